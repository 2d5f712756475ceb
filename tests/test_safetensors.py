#!/usr/bin/env python3
"""safetensors interoperability: files written here with only struct + json load in skd with
the right values (F16/BF16/F64/I64 conversions included); files skd writes are read back here
by an independent reader; scripts/pth2safetensors.py converts a PyTorch state_dict that skd then
loads value for value (skipped with a message when no Python with torch is found).
Closing line: "N passed, M failed"."""
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SKD_BIN", "./build/skd-lua")
CONVERTER = os.path.join(ROOT, "scripts", "pth2safetensors.py")
TMP = tempfile.mkdtemp(prefix="skd-st-py-")
passed = failed = 0


def test(fn):
    global passed, failed
    name = fn.__doc__.strip().splitlines()[0]
    try:
        fn()
        passed += 1
        print("ok    " + name)
    except SkipTest as s:
        print("skip  %s: %s" % (name, s))
    except Exception:  # noqa: BLE001 - report every failure and go on
        failed += 1
        print("FAIL  " + name + "\n      " + traceback.format_exc().replace("\n", "\n      "))
    return fn


class SkipTest(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def lua_str(s):
    return json.dumps(s)  # a JSON string of plain ASCII is a Lua string literal too


def run_skd(code):
    r = subprocess.run([BIN, "-e", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AssertionError("skd-lua failed (%d): %s%s" % (r.returncode, r.stdout, r.stderr))
    return r.stdout


# Prints every tensor and metadata pair of a file as hex, one per line, so that values compare
# bit for bit: "T name dtype shape hexbytes" and "M hexkey hexvalue".
DUMP = r"""
local function hex(s) return (s:gsub(".", function(c) return string.format("%%02x", c:byte()) end)) end
local t, m = skd.load(%s)
for name, x in pairs(t) do
  print("T", hex(name), x:dtype(), table.concat(x:size(), ","), hex(skd._tensor_bytes(x)))
end
for k, v in pairs(m) do print("M", hex(k), hex(v)) end
"""


def skd_load(path):
    tensors, meta = {}, {}
    for line in run_skd(DUMP % lua_str(path)).splitlines():
        parts = line.split("\t")
        if parts[0] == "T":
            shape = [int(d) for d in parts[3].split(",")] if parts[3] else []
            tensors[bytes.fromhex(parts[1]).decode()] = (parts[2], shape, bytes.fromhex(parts[4]))
        elif parts[0] == "M":
            meta[bytes.fromhex(parts[1]).decode()] = bytes.fromhex(parts[2]).decode()
    return tensors, meta


def f32_bytes(values):
    return b"".join(struct.pack("<f", v) for v in values)


def same_floats(got, want, what):
    """Bytes of float32 arrays equal, except that any NaN matches any NaN."""
    check(len(got) == len(want), "%s: %d bytes, expected %d" % (what, len(got), len(want)))
    for i in range(0, len(want), 4):
        g, w = struct.unpack("<f", got[i:i + 4])[0], struct.unpack("<f", want[i:i + 4])[0]
        ok = (math.isnan(g) and math.isnan(w)) or got[i:i + 4] == want[i:i + 4]
        check(ok, "%s: element %d is %r (%s), expected %r (%s)" % (
            what, i // 4, g, got[i:i + 4].hex(), w, want[i:i + 4].hex()))


# ------------------------------------------------------------------------------------------
# An independent writer and reader

def write_file(path, entries, metadata=None, data_order=None, ensure_ascii=True, pad=0):
    """entries: [(name, dtype, shape, raw bytes)]; the data may be laid out in another order
    than the header lists the tensors (data_order: indices), as the format allows."""
    order = data_order or list(range(len(entries)))
    offsets, pos = {}, 0
    for i in order:
        offsets[i] = (pos, pos + len(entries[i][3]))
        pos += len(entries[i][3])
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    for i, (name, dtype, shape, _) in enumerate(entries):
        header[name] = {"shape": shape, "dtype": dtype, "data_offsets": list(offsets[i])}
    text = json.dumps(header, ensure_ascii=ensure_ascii).encode("utf-8") + b" " * pad
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(entries[i][3] for i in order))


def read_file(path):
    """Parses a safetensors file with nothing but struct and json, checking the format's rules."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in header.items())
    cursor = 0
    for b, e, k in spans:
        check(b == cursor, "tensor %s starts at %d, expected %d (hole or overlap)" % (k, b, cursor))
        cursor = e
    check(cursor == len(data), "data buffer %d bytes, tensors cover %d" % (len(data), cursor))
    out = {}
    for k, v in header.items():
        b, e = v["data_offsets"]
        out[k] = (v["dtype"], v["shape"], data[b:e])
    return out, meta, n, list(header.keys()), blob[8:8 + n]


# ------------------------------------------------------------------------------------------

@test
def independent_writer():
    """a file written with struct + json loads in skd with exact conversions"""
    floats = [1.5, -0.0, float("inf"), float("-inf"), 1e-45, 3.4028234663852886e38, -2.0]
    nan_payload = struct.pack("<I", 0x7FC00123)
    halves = [1.0, -2.5, 65504.0, 2.0 ** -24, 6.097555160522461e-05, float("inf"), -0.0]
    bf_src = [1.0, -3.0, 3.140625, 1e-39, -1.7e38]
    bf = b"".join(struct.pack("<f", v)[2:] for v in bf_src)  # the top half of each float32
    doubles = [1 / 3, 1e300, -1e-300, 2.0 ** 100]
    i64 = [-2 ** 31, 2 ** 31 - 1, 0, 7]
    entries = [
        ("layer1.0.conv1.weight", "F32", [7], f32_bytes(floats)),
        ("nan", "F32", [1, 1], nan_payload),
        ("half", "F16", [7], b"".join(struct.pack("<e", v) for v in halves)),
        ("brain", "BF16", [5], bf),
        ("double", "F64", [2, 2], b"".join(struct.pack("<d", v) for v in doubles)),
        ("steps", "I64", [4], b"".join(struct.pack("<q", v) for v in i64)),
        ("bn1.num_batches_tracked", "I64", [], struct.pack("<q", 3000)),
        ("labels", "I32", [3], struct.pack("<3i", -1, 0, 255)),
        ("mask", "U8", [4], bytes([0, 1, 200, 255])),
        ("flags", "BOOL", [3], bytes([0, 1, 1])),
        ("empty", "F32", [0, 5], b""),
        ("scalar", "F32", [], struct.pack("<f", 2.5)),
        ("naïve ✓ 😀", "F32", [1], struct.pack("<f", 9.0)),
    ]
    meta = {"role": "teacher", "step": "1200", "note": "ünïcødé \"q\" \\ \n\t 😀"}
    path = os.path.join(TMP, "indep.safetensors")
    write_file(path, entries, meta, data_order=list(reversed(range(len(entries)))), pad=5)
    t, m = skd_load(path)
    check(m == meta, "metadata %r" % m)
    check(set(t) == {e[0] for e in entries}, "names %r" % sorted(t))
    dt, shape, raw = t["layer1.0.conv1.weight"]
    check((dt, shape, raw) == ("float32", [7], f32_bytes(floats)), "F32 bit-exact")
    check(t["nan"][2] == nan_payload, "NaN payload kept: %s" % t["nan"][2].hex())
    check(t["half"][0] == "float32", "F16 loads as float32")
    same_floats(t["half"][2], f32_bytes(halves), "F16")
    check(t["brain"][2] == b"".join(b"\0\0" + bf[i:i + 2] for i in range(0, len(bf), 2)), "BF16 bits")
    check(struct.unpack("<5f", t["brain"][2])[:3] == (1.0, -3.0, 3.140625), "BF16 values")
    want_d = [struct.unpack("<f", struct.pack("<f", 1 / 3))[0], float("inf"), -0.0, 2.0 ** 100]
    check(t["double"][1] == [2, 2], "F64 shape")
    check(t["double"][2] == f32_bytes(want_d), "F64 -> float32: %r" % (struct.unpack("<4f", t["double"][2]),))
    check(t["steps"] == ("int32", [4], struct.pack("<4i", *i64)), "I64 -> int32")
    check(t["bn1.num_batches_tracked"] == ("int32", [], struct.pack("<i", 3000)), "I64 scalar")
    check(t["labels"][2] == struct.pack("<3i", -1, 0, 255), "I32")
    check(t["mask"] == ("int32", [4], struct.pack("<4i", 0, 1, 200, 255)), "U8")
    check(t["flags"][2] == struct.pack("<3i", 0, 1, 1), "BOOL")
    check(t["empty"] == ("float32", [0, 5], b""), "empty %r" % (t["empty"],))
    check(t["scalar"] == ("float32", [], struct.pack("<f", 2.5)), "0-d")
    check(t["naïve ✓ 😀"][2] == struct.pack("<f", 9.0), "unicode name through \\u escapes")


@test
def independent_writer_out_of_range():
    """an I64 value beyond int32 is a clear error naming the tensor"""
    path = os.path.join(TMP, "range.safetensors")
    write_file(path, [("bn.num_batches_tracked", "I64", [2], struct.pack("<2q", 5, 2 ** 40))])
    out = run_skd("print(select(2, pcall(skd.load, %s)))" % lua_str(path))
    check("tensor 'bn.num_batches_tracked' (I64) holds 1099511627776 at flat index 1" in out and
          "does not fit in int32" in out, out)


@test
def skd_files_read_independently():
    """skd's files follow the format: an independent reader gets the same values and metadata"""
    path = os.path.join(TMP, "fromskd.safetensors")
    run_skd("""skd.save(%s, {
        ["b.weight"] = skd.tensor({{1.5, -2}, {0.25, 1e-40}}),
        a = skd.tensor({-2147483648, 2147483647, 0}, {dtype = "int32"}),
        s = skd.tensor(3.25), e = skd.zeros(0, 3),
        v = skd.tensor({{1, 2, 3}, {4, 5, 6}}):transpose(1, 2),
      }, {role = "student", step = 7, ["ключ"] = "значение \\"q\\""})""" % lua_str(path))
    t, meta, n, order, raw_header = read_file(path)
    check((8 + n) % 8 == 0, "data 8-byte aligned")
    check(order == sorted(order), "names sorted: %r" % order)
    check(raw_header.startswith(b'{"__metadata__":'), "metadata first")
    check(meta == {"role": "student", "step": "7", "ключ": 'значение "q"'}, "metadata %r" % meta)
    check(t["a"] == ("I32", [3], struct.pack("<3i", -2 ** 31, 2 ** 31 - 1, 0)), "int32 %r" % (t["a"],))
    check(t["b.weight"][:2] == ("F32", [2, 2]), "F32 header")
    check(t["b.weight"][2] == f32_bytes([1.5, -2, 0.25, 1e-40]), "F32 values")
    check(t["s"] == ("F32", [], struct.pack("<f", 3.25)), "0-d")
    check(t["e"] == ("F32", [0, 3], b""), "empty")
    check(t["v"] == ("F32", [3, 2], f32_bytes([1, 4, 2, 5, 3, 6])), "transposed view written contiguously")


@test
def converter_help():
    """pth2safetensors.py --help works without torch"""
    r = subprocess.run([sys.executable, CONVERTER, "--help"], capture_output=True, text=True)
    check(r.returncode == 0 and "usage:" in r.stdout and "--strip-prefix" in r.stdout and
          "--metadata" in r.stdout, r.stdout + r.stderr)


def torch_python():
    """An interpreter that has torch: this one, or Debian's python3-torch under /usr/bin."""
    for py in (sys.executable, "/usr/bin/python3"):
        if os.path.exists(py) and subprocess.run([py, "-c", "import torch, numpy"],
                                                 capture_output=True).returncode == 0:
            return py
    return None


TORCH_PY = torch_python()

MAKE_CHECKPOINTS = r"""
import json, sys, torch, torch.nn as nn
out = sys.argv[1]
torch.manual_seed(0)
m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2))
m.train()
for _ in range(2):
    m(torch.randn(2, 3, 6, 6))
sd = dict(m.state_dict())
sd["extra.half"] = torch.tensor([1.0, -2.5, 65504.0, 6e-8], dtype=torch.float16)
sd["extra.double"] = torch.tensor([[1 / 3, -1e-3]], dtype=torch.float64)
sd["extra.bf"] = torch.tensor([1.0, 3.140625, -0.0], dtype=torch.bfloat16)
sd["extra.mask"] = torch.tensor([True, False, True])
sd["extra.idx"] = torch.tensor([-5, 7], dtype=torch.int32)
sd["extra.scalar"] = torch.tensor(4.5)
torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}, "epoch": 3, "arch": "tiny"},
           out + "/wrapped.pth")
torch.save({"model": {"backbone." + k: v for k, v in sd.items()}, "optimizer": {}}, out + "/model.pth")
torch.save(m, out + "/whole_module.pth")
want = {}
for k, v in sd.items():
    if v.is_floating_point():
        want[k] = ["float32", list(v.shape), v.float().numpy().astype("<f4").tobytes().hex()]
    else:
        want[k] = ["int32", list(v.shape), v.numpy().astype("<i4").tobytes().hex()]
json.dump(want, open(out + "/want.json", "w"))
"""


def need_torch():
    if TORCH_PY is None:
        raise SkipTest("no python3 with torch found (python3-torch not installed)")


def convert(*args):
    r = subprocess.run([TORCH_PY, CONVERTER] + list(args), capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr


_made = {}


def checkpoints():
    if not _made:
        r = subprocess.run([TORCH_PY, "-c", MAKE_CHECKPOINTS, TMP], capture_output=True, text=True,
                           timeout=300)
        check(r.returncode == 0, r.stderr)
        with open(os.path.join(TMP, "want.json")) as f:
            _made.update(json.load(f))
    return _made


def compare(got, want, rename=lambda k: k):
    check(set(got) == {rename(k) for k in want}, "names: %r vs %r" % (sorted(got), sorted(want)))
    for k, (dtype, shape, hexbytes) in want.items():
        g = got[rename(k)]
        check(g[0] == dtype and g[1] == shape, "%s: %s %r, expected %s %r" % (k, g[0], g[1], dtype, shape))
        check(g[2] == bytes.fromhex(hexbytes), "%s: values differ" % k)


@test
def converter_wrapped_state_dict():
    """pth2safetensors: {"state_dict": {"module.*": ...}} converts and loads value for value"""
    need_torch()
    want = checkpoints()
    out = os.path.join(TMP, "wrapped.safetensors")
    rc, msg = convert(os.path.join(TMP, "wrapped.pth"), out, "--metadata", "role=teacher",
                      "--metadata", "step=100")
    check(rc == 0 and "from 'state_dict'" in msg, msg)
    t, meta = skd_load(out)
    compare(t, want)
    check(meta["role"] == "teacher" and meta["step"] == "100" and meta["format"] == "pt" and
          meta["source"] == "wrapped.pth", "metadata %r" % meta)
    raw, _, n, _, _ = read_file(out)  # and it follows the format for any reader
    check((8 + n) % 8 == 0, "aligned")
    check(raw["1.num_batches_tracked"][0] == "I64", "num_batches_tracked stays I64 in the file")
    check(raw["extra.half"][0] == "F32", "floats become F32")
    check(t["1.num_batches_tracked"][2] == struct.pack("<i", 2), "two training steps tracked")


@test
def converter_model_key_and_prefix():
    """pth2safetensors: the "model" key and --strip-prefix"""
    need_torch()
    want = checkpoints()
    out = os.path.join(TMP, "model.safetensors")
    rc, msg = convert(os.path.join(TMP, "model.pth"), out, "--strip-prefix", "backbone.", "-q")
    check(rc == 0 and msg == "", msg)
    t, _ = skd_load(out)
    compare(t, want)
    rc, msg = convert(os.path.join(TMP, "model.pth"), out, "--key", "nope")
    check(rc != 0 and "has no key 'nope'" in msg, msg)


@test
def converter_refuses_code_by_default():
    """pth2safetensors: a pickled module needs --unsafe-pickle, and then converts"""
    need_torch()
    want = checkpoints()
    path, out = os.path.join(TMP, "whole_module.pth"), os.path.join(TMP, "whole.safetensors")
    rc, msg = convert(path, out)
    check(rc != 0 and "--unsafe-pickle" in msg and not os.path.exists(out), msg)
    rc, msg = convert(path, out, "--unsafe-pickle")
    check(rc == 0, msg)
    t, _ = skd_load(out)
    compare(t, {k: v for k, v in want.items() if not k.startswith("extra.")})


try:
    if not os.path.exists(os.path.join(ROOT, BIN)) and not os.path.exists(BIN):
        failed += 1
        print("FAIL  skd-lua not built: %s" % BIN)
finally:
    shutil.rmtree(TMP, ignore_errors=True)
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
