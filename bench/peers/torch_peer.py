"""
The PyTorch peer for bench/torch.bench.ts: trains the models skein trains, on one thread, and answers
timing requests on stdin so the benchmark can alternate it with skein in one run.

Protocol, one line each way:  "<model> <batch> <steps>"  ->  "<seconds for the steps>"
  model: mlp (784-256-128-10, relu) or lenet (conv5-6 pad 2, maxpool2, conv5-16, maxpool2, 120, 84, 10)
SGD with lr 0.01, softmax cross-entropy, a fixed random batch (data loading is not timed on either side).
Prints "ready <torch version>" first, or "absent <reason>" when torch cannot be imported.
"""
import sys
import time

try:
    import torch
    import torch.nn as nn
except Exception as e:  # noqa: BLE001 - any import failure means: no peer here
    print(f"absent {e}", flush=True)
    sys.exit(0)

torch.set_num_threads(1)
torch.manual_seed(1)


def mlp():
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


def lenet():
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    )


MODELS = {"mlp": (mlp, (784,)), "lenet": (lenet, (1, 28, 28))}
ready = {}


def trainer(model, batch):
    key = (model, batch)
    if key not in ready:
        build, shape = MODELS[model]
        net = build()
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        x = torch.randn(batch, *shape)
        y = torch.randint(0, 10, (batch,))
        loss_fn = nn.CrossEntropyLoss()

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            return loss

        for _ in range(3):
            step()  # warm up
        ready[key] = step
    return ready[key]


def blas_library():
    """The BLAS shared library this process loaded (Debian's torch links libblas.so.3, whichever
    implementation the system's alternatives point it to: the reference BLAS or OpenBLAS)."""
    torch.mm(torch.ones(2, 2), torch.ones(2, 2))
    try:
        with open("/proc/self/maps") as maps:
            libs = {line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line}
        main = sorted(lib for lib in libs if "libblas" in lib) or sorted(libs)
        return ",".join(main) or "unknown"
    except OSError:
        return "unknown"


print(f"ready {torch.__version__} {blas_library()}", flush=True)
for line in sys.stdin:
    model, batch, steps = line.split()
    step = trainer(model, int(batch))
    t = time.perf_counter()
    for _ in range(int(steps)):
        step()
    print(f"{time.perf_counter() - t:.6f}", flush=True)
