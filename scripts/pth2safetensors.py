#!/usr/bin/env python3
"""Convert a PyTorch checkpoint (.pth/.pt state_dict) to safetensors for skd.load.

    scripts/pth2safetensors.py resnet18-f37072fd.pth resnet18.safetensors
    scripts/pth2safetensors.py train_epoch_200.pth teacher.safetensors \\
        --metadata role=teacher --metadata source=PSPNet-authors

For users who have PyTorch; skd itself never needs it. The checkpoint may be a state_dict, or
a dict holding one under "state_dict" or "model" (or --key NAME). Names lose a leading
"module." (DataParallel) and any --strip-prefix given. Floating tensors are written as F32;
integer and bool buffers keep their type (num_batches_tracked stays I64; skd loads it as
int32). The file is written by this script (struct + json, no safetensors package) to a
temporary file that is fsync'ed and renamed, so the output is never left half written.

By default the checkpoint is unpickled with torch.load(weights_only=True), which refuses to
run code from the file; --unsafe-pickle lifts that for checkpoints you trust that hold other
objects (e.g. an argparse.Namespace of training options).
"""
import argparse
import json
import os
import struct
import sys
import tempfile

DEFAULT_KEYS = ("state_dict", "model", "model_state_dict", "net")


def fail(msg):
    sys.exit("pth2safetensors: " + msg)


def load_checkpoint(path, unsafe):
    try:
        import torch
    except ImportError:
        fail("needs PyTorch to read .pth files (pip install torch, or apt install python3-torch)")
    try:
        if unsafe:
            return torch.load(path, map_location="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except TypeError:  # a torch older than 1.13 has no weights_only
        if unsafe:
            raise
        fail("this PyTorch cannot load checkpoints safely (no weights_only); "
             "pass --unsafe-pickle if you trust '%s'" % path)
    except FileNotFoundError:
        fail("'%s': no such file" % path)
    except Exception as e:  # noqa: BLE001 - the unpickler raises many kinds
        if unsafe:
            raise
        fail("'%s' cannot be loaded as plain data (%s: %s); if you trust the file, "
             "pass --unsafe-pickle" % (path, type(e).__name__, str(e).splitlines()[0][:200]))


def pick_state_dict(obj, key):
    """The dict of tensors inside a checkpoint, and the path of keys that led to it."""
    import torch
    if isinstance(obj, torch.nn.Module):
        return obj.state_dict(), "module.state_dict()"
    if not isinstance(obj, dict):
        fail("the checkpoint is a %s, not a dict of tensors" % type(obj).__name__)
    if key is not None:
        if key not in obj:
            fail("the checkpoint has no key '%s' (it has: %s)" % (key, ", ".join(map(str, obj))))
        return obj[key], key
    for k in DEFAULT_KEYS:
        if isinstance(obj.get(k), dict):
            return obj[k], k
    return obj, None


# torch dtype name -> (safetensors dtype, numpy little-endian type)
INT_TYPES = {
    "torch.int64": ("I64", "<i8"), "torch.int32": ("I32", "<i4"), "torch.int16": ("I16", "<i2"),
    "torch.int8": ("I8", "i1"), "torch.uint8": ("U8", "u1"), "torch.bool": ("BOOL", "u1"),
}


def convert_tensors(sd, prefixes):
    """[(name, safetensors dtype, shape, bytes-producing function)], sorted by name."""
    import torch
    out, skipped, seen = [], [], {}
    for name, t in sd.items():
        if not isinstance(t, torch.Tensor):
            skipped.append(str(name))
            continue
        new = str(name)
        for p in prefixes:
            if p and new.startswith(p):
                new = new[len(p):]
        if new in seen:
            fail("'%s' and '%s' both become '%s' once prefixes are stripped" % (seen[new], name, new))
        seen[new] = name
        if t.is_complex() or t.is_quantized:
            fail("tensor '%s' has dtype %s, which safetensors for skd cannot hold" % (name, t.dtype))
        if t.is_floating_point():
            st, np_type, t = "F32", "<f4", t.detach().to(torch.float32)
        elif str(t.dtype) in INT_TYPES:
            st, np_type = INT_TYPES[str(t.dtype)]
        else:
            fail("tensor '%s' has unsupported dtype %s" % (name, t.dtype))

        def raw(t=t, np_type=np_type):
            return t.detach().cpu().contiguous().numpy().astype(np_type, copy=False).tobytes()

        out.append((new, st, list(t.shape), t.numel() * int(np_type[-1]), raw))
    out.sort(key=lambda e: e[0])
    return out, skipped


def write_safetensors(path, tensors, metadata):
    """tensors: [(name, dtype, shape, nbytes, raw())]. Atomic: temp file, fsync, rename."""
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = dict(sorted(metadata.items()))
    for name, dtype, shape, nbytes, _ in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)  # the data starts 8-byte aligned
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for name, _, _, nbytes, raw in tensors:
                data = raw()
                if len(data) != nbytes:
                    raise RuntimeError("tensor '%s': %d bytes, expected %d" % (name, len(data), nbytes))
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass  # a filesystem that cannot fsync a directory has nothing to flush
    return offset


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def parse_metadata(items):
    meta = {}
    for item in items:
        if "=" not in item:
            fail("--metadata expects key=value, got '%s'" % item)
        k, v = item.split("=", 1)
        meta[k] = v
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Convert a PyTorch .pth/.pt state_dict to safetensors (for skd.load).",
        epilog="Example: %(prog)s resnet18-f37072fd.pth resnet18.safetensors --metadata role=teacher")
    ap.add_argument("input", help="the PyTorch checkpoint (.pth or .pt)")
    ap.add_argument("output", nargs="?", help="the safetensors file (default: input with .safetensors)")
    ap.add_argument("--key", help="take the state_dict from this key of the checkpoint "
                    "(default: the first of %s that holds a dict, else the whole file)" % ", ".join(DEFAULT_KEYS))
    ap.add_argument("--strip-prefix", action="append", default=[], metavar="PREFIX",
                    help="remove PREFIX from the start of names (repeatable; 'module.' always is)")
    ap.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE",
                    help="a metadata string to store (repeatable), e.g. role=teacher")
    ap.add_argument("--unsafe-pickle", action="store_true",
                    help="unpickle arbitrary objects (runs code from the file: trusted files only)")
    ap.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    args = ap.parse_args(argv)

    output = args.output or os.path.splitext(args.input)[0] + ".safetensors"
    meta = {"format": "pt", "source": os.path.basename(args.input),
            "converted_by": "skd scripts/pth2safetensors.py"}
    meta.update(parse_metadata(args.metadata))
    obj = load_checkpoint(args.input, args.unsafe_pickle)
    sd, where = pick_state_dict(obj, args.key)
    if not isinstance(sd, dict):
        fail("'%s' holds a %s, not a dict of tensors" % (where, type(sd).__name__))
    tensors, skipped = convert_tensors(sd, ["module."] + args.strip_prefix)
    if not tensors:
        fail("no tensors found in '%s'%s" % (args.input, " under '%s'" % where if where else ""))
    nbytes = write_safetensors(output, tensors, meta)
    if not args.quiet:
        params = sum(_numel(shape) for _, _, shape, _, _ in tensors)
        print("%s: %d tensors (%s elements, %.1f MB)%s -> %s" % (
            args.input, len(tensors), format(params, ","), nbytes / 1e6,
            " from '%s'" % where if where else "", output))
        if skipped:
            print("skipped %d entries that are not tensors: %s" % (len(skipped), ", ".join(skipped[:10])
                  + (" ..." if len(skipped) > 10 else "")))
    return 0


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


if __name__ == "__main__":
    sys.exit(main())
