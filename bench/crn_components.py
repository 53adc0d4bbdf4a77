"""Why the CRN's building blocks are what they are: forward + backward time of candidate layers on
one thread, on a tensor of the CRN's bottleneck size (batch 8, 48 channels, 189 frames, 33 bands).

    OMP_NUM_THREADS=1 .venv/bin/python bench/crn_components.py

Compares dilated depth-wise Conv2d against grouped/full convolutions, PReLU against LeakyReLU/SiLU,
and BatchNorm; results in docs/BENCHMARKS.md.
"""
import torch, time
from torch import nn
torch.set_num_threads(1)
x = torch.randn(8, 48, 189, 33, requires_grad=True)
def bench(name, mod, inp):
    ts=[]
    for i in range(4):
        t0=time.perf_counter(); y = mod(inp); y.sum().backward(); ts.append(time.perf_counter()-t0)
    print(name, round(min(ts)*1000,1), "ms")
for d in (1,2,5):
    bench(f"dw3x3 d{d}", nn.Conv2d(48,48,(3,3),dilation=(d,1),groups=48,padding=(d,1)), x)
    bench(f"g4 3x3 d{d}", nn.Conv2d(48,48,(3,3),dilation=(d,1),groups=4,padding=(d,1)), x)
    bench(f"full3x3 d{d}", nn.Conv2d(48,48,(3,3),dilation=(d,1),padding=(d,1)), x)
bench("pw1x1", nn.Conv2d(48,48,1), x)
bench("prelu", nn.PReLU(48), x)
bench("leaky", nn.LeakyReLU(0.1), x)
bench("silu", nn.SiLU(), x)
bench("bn", nn.BatchNorm2d(48), x)

from specdenoise.models.crn import TemporalBlock  # noqa: E402  (the shipped form: shifted products)

for d in (1, 2, 5):
    block = TemporalBlock(48, d)
    bench(f"crn TemporalBlock d{d} (taps + 1x1 + LeakyReLU, residual)", lambda z, b=block: b(z, None)[0], x)
