#!/usr/bin/env python3
"""PyTorch peer for bench/models.bench.ts: the same resnet:N, trained the same way, on one thread.

The network is He et al. 2016's CIFAR ResNet as skein builds it (engine/model/resnet.ts): 3x3 stem
without bias, batch norm, ReLU; three stages of basic blocks at 16/32/64 channels, stride 2 at the
first block of stages 2 and 3, option-A shortcuts (strided identity, zero-padded channels); global
average pooling; a linear head. SGD with momentum 0.9 on softmax cross-entropy.

Protocol (so the benchmark can alternate skein and PyTorch trials in one run): arguments
`DEPTH C H W BATCH CLASSES`; then each stdin line `STEPS` trains that many steps on a fixed random
batch and answers one JSON line {"seconds": ..., "loss": ...}. Without torch it prints
{"skipped": "..."} and exits 0.
"""
import json
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print(json.dumps({"skipped": "PyTorch is not installed for this python (Debian: apt-get install -y python3-torch)"}), flush=True)
    sys.exit(0)


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride = stride
        self.grow = cout - cin

    def shortcut(self, x):
        if self.stride == 1 and self.grow == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.grow // 2, self.grow - self.grow // 2))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, depth, channels, classes):
        super().__init__()
        n = (depth - 2) // 6
        self.stem = nn.Conv2d(channels, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for stage, cout in enumerate([16, 32, 64]):
            for i in range(n):
                blocks.append(Block(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(64, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")

    def forward(self, x):
        x = F.relu(self.bn(self.stem(x)))
        x = self.blocks(x)
        return self.head(x.mean(dim=(2, 3)))


def blas_library():
    """The BLAS this process loaded (Debian's torch uses whatever libblas.so.3 points to)."""
    try:
        with open("/proc/self/maps") as maps:
            libs = {line.split()[-1].rsplit("/", 2)[-2] + "/" + line.split()[-1].rsplit("/", 1)[-1] for line in maps if "blas" in line}
        return ", ".join(sorted(libs)) or "none loaded"
    except OSError:
        return "unknown"


def main():
    depth, c, h, w, batch, classes = (int(a) for a in sys.argv[1:7])
    torch.set_num_threads(1)
    torch.manual_seed(1)
    model = ResNet(depth, c, classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, c, h, w)
    y = torch.randint(0, classes, (batch,))
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas_library()}), flush=True)
    for line in sys.stdin:
        steps = int(line)
        t = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        print(json.dumps({"seconds": time.perf_counter() - t, "loss": loss.item()}), flush=True)


if __name__ == "__main__":
    main()
