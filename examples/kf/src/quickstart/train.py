"""The quickstart's trainer: data-parallel softmax regression, standard library only.

Run by `kf quickstart` as a local TrainJob with the torch-style env
(RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT): every rank reads the dataset
the dataset initializer copied into $KF_WORKSPACE/dataset, keeps the rows
of its shard (row i goes to rank i mod WORLD_SIZE), and each epoch the
ranks sum their gradients through rank 0 (a star all-reduce over TCP), so
every rank applies the same update. Rank 0 writes the model as ONNX
(standardisation folded into the weights; MatMul -> Add -> Softmax, and
ArgMax for the label) and prints `name=value` metrics the TrainJob status
picks up.

Usage: train.py --data CSV --out MODEL.onnx [--val CSV] [--lr 0.5] [--epochs 60] [--l2 1e-3]
With --val, rank 0 also prints val_loss= and val_accuracy= every 10 epochs
(the intermediate values a tuning experiment's early stopping reads).
CSV columns: 4 float features, then the integer class.
"""

import argparse
import json
import math
import os
import socket
import struct
import sys
import time


def env_int(name):
    value = os.environ.get(name)
    if value is None:
        sys.exit(f"train.py: {name} is not set; run me as a TrainJob (kf quickstart / kf train run)")
    return int(value)


def read_rows(path):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#") or line[0].isalpha():
                continue
            parts = line.split(",")
            if len(parts) != 5:
                sys.exit(f"train.py: {path}:{n}: expected 4 features and a class, found {len(parts)} fields")
            rows.append(([float(p) for p in parts[:4]], int(parts[4])))
    return rows


class AllReduce:
    """Sums lists of floats across ranks: rank 0 collects and broadcasts."""

    def __init__(self, rank, world, addr, port):
        self.rank, self.world, self.peers = rank, world, []
        if world == 1:
            return
        if rank == 0:
            server = socket.create_server((addr, port))
            while len(self.peers) < world - 1:
                conn, _ = server.accept()
                self.peers.append(conn.makefile("rw"))
            server.close()
        else:
            deadline = time.time() + 30
            while True:
                try:
                    conn = socket.create_connection((addr, port))
                    break
                except OSError:
                    if time.time() > deadline:
                        sys.exit(f"train.py: rank {rank}: master {addr}:{port} unreachable")
                    time.sleep(0.05)
            self.peers.append(conn.makefile("rw"))

    def sum(self, values):
        if self.world == 1:
            return values
        if self.rank == 0:
            total = list(values)
            for peer in self.peers:
                theirs = json.loads(peer.readline())
                total = [a + b for a, b in zip(total, theirs)]
            for peer in self.peers:
                peer.write(json.dumps(total) + "\n")
                peer.flush()
            return total
        peer = self.peers[0]
        peer.write(json.dumps(values) + "\n")
        peer.flush()
        return json.loads(peer.readline())


def softmax(z):
    m = max(z)
    e = [math.exp(v - m) for v in z]
    s = sum(e)
    return [v / s for v in e]


# --- ONNX, written with the protobuf wire format by hand --------------------

def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, value):
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def tensor(name, dims, floats):
    raw = struct.pack(f"<{len(floats)}f", *floats)
    return b"".join(field(1, d) for d in dims) + field(2, 1) + field(8, name) + field(9, raw)


def value_info(name, elem_type, dims):
    shape = b"".join(field(1, field(1, d) if isinstance(d, int) else field(2, d)) for d in dims)
    return field(1, name) + field(2, field(1, field(1, elem_type) + field(2, shape)))


def node(op, inputs, outputs, name, **ints):
    attrs = b"".join(field(5, field(1, k) + field(3, v) + field(20, 2)) for k, v in ints.items())
    return b"".join(field(1, i) for i in inputs) + b"".join(field(2, o) for o in outputs) + field(3, name) + field(4, op) + attrs


def onnx_model(weights, bias, classes):
    """probabilities = Softmax(input @ W + b), label = ArgMax(input @ W + b)."""
    w = [weights[k][j] for j in range(4) for k in range(classes)]  # W is [4, classes], row-major
    nodes = [
        node("MatMul", ["input", "W"], ["logits_raw"], "matmul"),
        node("Add", ["logits_raw", "b"], ["logits"], "bias"),
        node("Softmax", ["logits"], ["probabilities"], "softmax", axis=1),
        node("ArgMax", ["logits"], ["label"], "argmax", axis=1, keepdims=0),
    ]
    graph = (
        b"".join(field(1, n) for n in nodes)
        + field(2, "kf-quickstart-logreg")
        + field(5, tensor("W", [4, classes], w))
        + field(5, tensor("b", [classes], bias))
        + field(11, value_info("input", 1, ["batch", 4]))
        + field(12, value_info("probabilities", 1, ["batch", classes]))
        + field(12, value_info("label", 7, ["batch"]))
    )
    opset = field(1, "") + field(2, 13)
    return field(1, 8) + field(2, "kf-quickstart") + field(7, graph) + field(8, opset)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--val")
    ap.add_argument("--lr", type=float, default=0.5)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--l2", type=float, default=1e-3)
    args = ap.parse_args()
    if not (args.lr > 0 and math.isfinite(args.lr)):
        sys.exit(f"train.py: --lr must be a positive number, got {args.lr}")

    rank, world = env_int("RANK"), env_int("WORLD_SIZE")
    rows = read_rows(args.data)
    classes = max(c for _, c in rows) + 1
    shard = rows[rank::world]
    reduce = AllReduce(rank, world, os.environ.get("MASTER_ADDR", "127.0.0.1"), env_int("MASTER_PORT"))

    # Standardise with statistics of the whole data set (summed over shards).
    stats = reduce.sum([float(len(shard))] + [sum(x[j] for x, _ in shard) for j in range(4)]
                       + [sum(x[j] ** 2 for x, _ in shard) for j in range(4)])
    n = stats[0]
    mean = [stats[1 + j] / n for j in range(4)]
    std = [math.sqrt(max(stats[5 + j] / n - mean[j] ** 2, 1e-12)) for j in range(4)]
    xs = [([(x[j] - mean[j]) / std[j] for j in range(4)], c) for x, c in shard]

    w = [[0.0] * 4 for _ in range(classes)]
    b = [0.0] * classes
    val = []
    if args.val and rank == 0:
        val = [([(x[j] - mean[j]) / std[j] for j in range(4)], c) for x, c in read_rows(args.val)]

    def evaluate(rows):
        loss, correct = 0.0, 0
        for x, c in rows:
            p = softmax([sum(w[k][j] * x[j] for j in range(4)) + b[k] for k in range(classes)])
            loss -= math.log(max(p[c], 1e-12))
            correct += max(range(classes), key=lambda k: p[k]) == c
        return loss / max(len(rows), 1), correct / max(len(rows), 1)
    print(f"rank {rank}/{world}: {len(shard)} of {int(n)} rows, {classes} classes", flush=True)
    for epoch in range(1, args.epochs + 1):
        gw = [[0.0] * 4 for _ in range(classes)]
        gb = [0.0] * classes
        loss, correct = 0.0, 0
        for x, c in xs:
            p = softmax([sum(w[k][j] * x[j] for j in range(4)) + b[k] for k in range(classes)])
            loss -= math.log(max(p[c], 1e-12))
            correct += max(range(classes), key=lambda k: p[k]) == c
            for k in range(classes):
                d = p[k] - (1.0 if k == c else 0.0)
                gb[k] += d
                for j in range(4):
                    gw[k][j] += d * x[j]
        flat = [v for row in gw for v in row] + gb + [loss, float(correct)]
        total = reduce.sum(flat)
        for k in range(classes):
            for j in range(4):
                w[k][j] -= args.lr * (total[k * 4 + j] / n + args.l2 * w[k][j])
            b[k] -= args.lr * total[classes * 4 + k] / n
        mean_loss, accuracy = total[-2] / n, total[-1] / n
        if rank == 0 and (epoch % 10 == 0 or epoch == args.epochs):
            report = f"epoch={epoch} loss={mean_loss:.4f} accuracy={accuracy:.4f}"
            if val:
                val_loss, val_accuracy = evaluate(val)
                report += f" val_loss={val_loss:.4f} val_accuracy={val_accuracy:.4f}"
            print(f"{report} progress={100 * epoch // args.epochs}", flush=True)

    if rank == 0:
        # Fold the standardisation into the weights: w.(x-m)/s + b = (w/s).x + (b - w.m/s).
        wf = [[w[k][j] / std[j] for j in range(4)] for k in range(classes)]
        bf = [b[k] - sum(w[k][j] * mean[j] / std[j] for j in range(4)) for k in range(classes)]
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        tmp = args.out + ".tmp"
        with open(tmp, "wb") as f:
            f.write(onnx_model(wf, bf, classes))
        os.replace(tmp, args.out)
        print(f"wrote {args.out}", flush=True)


if __name__ == "__main__":
    main()
