"""The self-modifying op's compiled chunk step (`compile_step=True`, torch.compile of
`chunk_step`) computes what the eager step does: outputs, final states and input gradients.

A GPU test: torch.compile of the step takes over ten minutes of C++ compilation on a 2-core CPU
(measured), so CI cannot afford it there; on the device it compiles to Triton in about a minute."""

import pytest
import torch

from ops_common import assert_close
from runtime.ops.self_modifying_titans import chunk_self_modifying_titans, memory_names

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compiled_step_equals_eager():
    g = torch.Generator(device="cuda").manual_seed(3)
    B, T, H, D, hid = 2, 37, 2, 8, 16   # 37: the last chunk is partial (a second compiled shape)
    x = (torch.randn(B, T, H, D, generator=g, device="cuda") / D ** 0.5).requires_grad_()
    init = {n: ((0.3 * torch.randn(H, 1 if n in ("eta", "alpha") else D, hid, generator=g, device="cuda"))
                .requires_grad_(), (0.3 * torch.randn(H, hid, D, generator=g, device="cuda")).requires_grad_())
            for n in memory_names(False)}
    W_q = torch.randn(H, D, D, generator=g, device="cuda") / D ** 0.5
    kw = dict(chunk_size=16, eta_bias=-2.6, alpha_bias=5.0, v_l2norm=True, momentum=0.9)
    runs = []
    for compile_step in (False, True):
        o, state = chunk_self_modifying_titans(x, init, W_q, compile_step=compile_step, **kw)
        leaves = [x] + [w for pair in init.values() for w in pair]
        grads = torch.autograd.grad(o.square().sum() + state["mem"][0].sum(), leaves)
        runs.append((o, state, grads))
    (o0, s0, g0), (o1, s1, g1) = runs
    # float32 and a fused kernel: the same math summed in another order, so 1e-4 relative
    assert_close(o1, o0, 1e-4)
    for n in s0:
        for a, b in zip(s1[n], s0[n]):
            assert_close(a, b, 1e-4)
    for a, b in zip(g1, g0):
        assert_close(a, b, 1e-4)
