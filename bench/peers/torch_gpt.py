#!/usr/bin/env python3
"""PyTorch peer for bench/models.bench.ts: the same gpt:LAYERS-HEADS-EMBED-CONTEXT, one thread.

The network is skein's (engine/model/gpt.ts), GPT-2's layout: token + position embedding, pre-LN
blocks (causal multi-head attention, GELU MLP with the tanh approximation, residual adds), final
LayerNorm, linear head with bias; GPT-2 initialisation (std 0.02, residual projections scaled by
1/sqrt(2 LAYERS), position table std 0.01 as in skein). Adam with skein's defaults (lr 1e-3,
betas 0.9/0.999, eps 1e-8, no weight decay); cross-entropy at every position.

Protocol: arguments `LAYERS HEADS EMBED CONTEXT VOCAB BATCH WINDOWS_FILE TEST_FILE`, where the files
hold uint8 token windows of CONTEXT + 1 (skein's text windows, written by the benchmark). Then each
stdin line is `train STEPS` (that many steps on consecutive batches of the shuffled train windows;
answers {"seconds", "loss"}) or `eval` (answers {"loss"}: mean nats/char over the test windows).
Without torch it prints {"skipped": "..."} and exits 0.
"""
import json
import math
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print(json.dumps({"skipped": "PyTorch is not installed for this python (Debian: apt-get install -y python3-torch)"}), flush=True)
    sys.exit(0)


class Block(nn.Module):
    def __init__(self, E, H, layers):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(E), nn.LayerNorm(E)
        self.qkv, self.proj = nn.Linear(E, 3 * E), nn.Linear(E, E)
        self.fc, self.fc2 = nn.Linear(E, 4 * E), nn.Linear(4 * E, E)
        self.H = H
        for lin in (self.qkv, self.fc):
            nn.init.normal_(lin.weight, std=0.02)
            nn.init.zeros_(lin.bias)
        for lin in (self.proj, self.fc2):
            nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * layers))
            nn.init.zeros_(lin.bias)

    def forward(self, x):
        B, T, E = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(E, dim=2)
        shape = (B, T, self.H, E // self.H)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(E // self.H)
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf")).softmax(-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(B, T, E))
        return x + self.fc2(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, H, E, T, V):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, E), nn.Embedding(T, E)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.01)
        self.blocks = nn.Sequential(*[Block(E, H, L) for _ in range(L)])
        self.ln, self.head = nn.LayerNorm(E), nn.Linear(E, V)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, idx):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T))
        return self.head(self.ln(self.blocks(x)))


def blas_library():
    """The BLAS this process loaded (Debian's torch uses whatever libblas.so.3 points to)."""
    try:
        with open("/proc/self/maps") as maps:
            libs = {line.split()[-1].rsplit("/", 2)[-2] + "/" + line.split()[-1].rsplit("/", 1)[-1] for line in maps if "blas" in line}
        return ", ".join(sorted(libs)) or "none loaded"
    except OSError:
        return "unknown"


def main():
    L, H, E, T, V, batch = (int(a) for a in sys.argv[1:7])
    train = torch.from_numpy(np.fromfile(sys.argv[7], dtype=np.uint8).reshape(-1, T + 1).astype(np.int64))
    test = torch.from_numpy(np.fromfile(sys.argv[8], dtype=np.uint8).reshape(-1, T + 1).astype(np.int64))
    torch.set_num_threads(1)
    torch.manual_seed(1)
    model = GPT(L, H, E, T, V)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    order = torch.randperm(len(train))
    at = 0
    print(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas_library()}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "train":
            t = time.perf_counter()
            model.train()
            for _ in range(int(cmd[1])):
                if at + batch > len(order):
                    order, at = torch.randperm(len(train)), 0
                w = train[order[at : at + batch]]
                at += batch
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(w[:, :-1]).reshape(-1, V), w[:, 1:].reshape(-1))
                loss.backward()
                opt.step()
            print(json.dumps({"seconds": time.perf_counter() - t, "loss": loss.item()}), flush=True)
        elif cmd[0] == "eval":
            model.eval()
            total = 0.0
            with torch.no_grad():
                for i in range(0, len(test), 64):
                    w = test[i : i + 64]
                    total += F.cross_entropy(model(w[:, :-1]).reshape(-1, V), w[:, 1:].reshape(-1), reduction="sum").item()
            print(json.dumps({"loss": total / (len(test) * T)}), flush=True)


if __name__ == "__main__":
    main()
