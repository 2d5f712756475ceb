"""skd.models against PyTorch on the same weights: ResNet-18 (torchvision's definition, written
out here because torchvision may be absent) and a small dilated PSPNet with the deep stem.

PyTorch builds the networks with random weights and random BatchNorm statistics, writes them,
the input and its outputs to a safetensors file with its own writer (struct + json, nothing of
skd's), then skd-lua loads the file with skd.load, builds the same networks with skd.models,
loads the weights with load_state_dict(strict) and prints its outputs' differences. Checked:
the state-dict names and order, eval outputs (max abs diff < 1e-4), and for ResNet-18 a
training-mode step: outputs, BatchNorm running statistics and parameter gradients.

Skips (with a message and the closing line) when no python3 has torch.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def find_torch():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        pass
    # Debian's python3-torch lives under /usr/bin/python3 while a pyenv python3 may be first
    # on PATH: re-run this file there, once.
    if os.environ.get("SKD_TORCH_REEXEC"):
        return False
    for py in (os.environ.get("SKD_PYTHON"), "/usr/bin/python3"):
        if py and os.path.exists(py) and os.path.realpath(py) != os.path.realpath(sys.executable):
            ok = subprocess.run([py, "-c", "import torch"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL).returncode == 0
            if ok:
                os.environ["SKD_TORCH_REEXEC"] = "1"
                os.execv(py, [py] + sys.argv)
    return False


if not find_torch():
    print("skip  test_models_torch: no python3 with torch (python3 -c 'import torch' fails)")
    print("0 passed, 0 failed")
    sys.exit(0)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.manual_seed(0)
torch.set_num_threads(2)

# ------------------------------------------------------------------ the networks (torchvision's)


def conv3x3(cin, cout, stride=1, dilation=1):
    return nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False)


def conv1x1(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 1, stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, dilation=1):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = self.downsample(x) if self.downsample is not None else x
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision.models.resnet.ResNet (BasicBlock only), with replace_stride_with_dilation,
    a width multiplier and the deep stem as skd.models.resnet offers them."""

    def __init__(self, layers, num_classes=None, width=1.0, dilate=(False, False, False), deep_stem=False):
        super().__init__()
        ch = lambda c: max(1, int(c * width + 0.5))  # noqa: E731
        self.deep_stem = deep_stem
        if deep_stem:
            self.conv1 = conv3x3(3, ch(64), 2)
            self.bn1 = nn.BatchNorm2d(ch(64))
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = conv3x3(ch(64), ch(64))
            self.bn2 = nn.BatchNorm2d(ch(64))
            self.conv3 = conv3x3(ch(64), ch(128))
            self.bn3 = nn.BatchNorm2d(ch(128))
            self.inplanes = ch(128)
        else:
            self.conv1 = nn.Conv2d(3, ch(64), 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(ch(64))
            self.relu = nn.ReLU(inplace=True)
            self.inplanes = ch(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.dilation = 1
        self.layer1 = self._make_layer(ch(64), layers[0])
        self.layer2 = self._make_layer(ch(128), layers[1], 2, dilate[0])
        self.layer3 = self._make_layer(ch(256), layers[2], 2, dilate[1])
        self.layer4 = self._make_layer(ch(512), layers[3], 2, dilate[2])
        self.out_channels = ch(512)
        self.num_classes = num_classes
        if num_classes:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(ch(512), num_classes)

    def _make_layer(self, planes, blocks, stride=1, dilate=False):
        previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample, previous_dilation)]
        self.inplanes = planes
        for _ in range(1, blocks):
            layers.append(BasicBlock(self.inplanes, planes, dilation=self.dilation))
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if self.deep_stem:
            x = self.relu(self.bn2(self.conv2(x)))
            x = self.relu(self.bn3(self.conv3(x)))
        x = self.maxpool(x)
        x = self.layer2(self.layer1(x))
        x3 = self.layer3(x)
        x4 = self.layer4(x3)
        if self.num_classes:
            return self.fc(torch.flatten(self.avgpool(x4), 1))
        return x4, x3


class PPM(nn.Module):
    def __init__(self, cin, bins):
        super().__init__()
        red = cin // 4
        self.stages = nn.ModuleList([nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(cin, red, 1, bias=False),
                                                   nn.BatchNorm2d(red), nn.ReLU(inplace=True)) for b in bins])

    def forward(self, x):
        h, w = x.shape[2:]
        return torch.cat([x] + [F.interpolate(s(x), (h, w), mode="bilinear", align_corners=True)
                                for s in self.stages], 1)


class PSPNet(nn.Module):
    """skd.models.pspnet's layout: backbone, ppm.stages, head (conv-BN-ReLU), dropout,
    classifier, aux."""

    def __init__(self, num_classes, width, head, bins=(1, 2, 3, 6)):
        super().__init__()
        self.backbone = ResNet([2, 2, 2, 2], None, width, (False, True, True), deep_stem=True)
        c = self.backbone.out_channels
        self.ppm = PPM(c, bins)
        self.head = nn.Sequential(nn.Conv2d(2 * c, head, 3, padding=1, bias=False), nn.BatchNorm2d(head),
                                  nn.ReLU(inplace=True))
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(head, num_classes, 1)
        c3 = c // 2
        self.aux = nn.Sequential(nn.Conv2d(c3, 256, 3, padding=1, bias=False), nn.BatchNorm2d(256),
                                 nn.ReLU(inplace=True), nn.Dropout2d(0.1), nn.Conv2d(256, num_classes, 1))

    def forward(self, x):
        x4, x3 = self.backbone(x)
        feat = self.head(self.ppm(x4))
        return self.classifier(self.dropout(feat)), self.aux(x3), feat


def randomise_bn(m):
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                c = mod.num_features
                mod.running_mean.copy_(torch.randn(c) * 0.2)
                mod.running_var.copy_(torch.rand(c) + 0.5)
                mod.weight.copy_(torch.rand(c) + 0.5)
                mod.bias.copy_(torch.randn(c) * 0.1)
                mod.num_batches_tracked.fill_(3)


# ------------------------------------------------------------------ an independent safetensors writer

DTYPES = {torch.float32: "F32", torch.int64: "I64", torch.int32: "I32"}


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        data = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    header["__metadata__"] = {"source": "tests/test_models_torch.py"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ------------------------------------------------------------------ the cases

tensors, keys = {}, {}

# ResNet-18, torchvision's network, evaluation mode
r18 = ResNet([2, 2, 2, 2], num_classes=1000)
randomise_bn(r18)
r18.eval()
x = torch.randn(1, 3, 97, 129)
with torch.no_grad():
    y = r18(x)
for k, v in r18.state_dict().items():
    tensors["r18." + k] = v  # num_batches_tracked as int64, as PyTorch stores it
keys["r18"] = list(r18.state_dict().keys())
tensors["in.x"] = x
tensors["out.r18"] = y

# ResNet-18 training step: batch statistics, running-statistics update, gradients
r18t = ResNet([2, 2, 2, 2], num_classes=10, width=0.5)
randomise_bn(r18t)
for k, v in r18t.state_dict().items():
    tensors["r18t." + k] = v.clone()
r18t.train()
xt = torch.randn(2, 3, 65, 49)
proj = torch.randn(2, 10)
yt = r18t(xt)
(yt * proj).sum().backward()
tensors["in.xt"] = xt
tensors["in.proj"] = proj
tensors["out.r18t"] = yt.detach()
for name in ["conv1.weight", "bn1.weight", "layer2.0.downsample.0.weight", "layer4.1.conv2.weight", "fc.weight", "fc.bias"]:
    tensors["grad.r18t." + name] = dict(r18t.named_parameters())[name].grad
for name in ["bn1.running_mean", "bn1.running_var", "layer3.1.bn2.running_var"]:
    tensors["after.r18t." + name] = r18t.state_dict()[name]

# A small PSPNet (ResNet-18 width 0.25, deep stem, output stride 8, head 32), evaluation mode
psp = PSPNet(5, 0.25, 32)
randomise_bn(psp)
psp.eval()
with torch.no_grad():
    logits, aux, feat = psp(x)
for k, v in psp.state_dict().items():
    tensors["psp." + k] = v
keys["psp"] = list(psp.state_dict().keys())
tensors["out.psp.logits"], tensors["out.psp.aux"], tensors["out.psp.feat"] = logits, aux, feat

LUA = r'''
local path = arg[1]
local tensors = skd.load(path)
local function sub(prefix)
  local out = {}
  for k, t in pairs(tensors) do
    if k:sub(1, #prefix) == prefix then out[k:sub(#prefix + 1)] = t end
  end
  return out
end
local function diff(a, b) return (a - b:reshape(a:size())):abs():max():item() end
local function rel(a, b) return diff(a, b) / math.max(b:abs():max():item(), 1e-12) end

local r18 = skd.models.resnet{depth = 18, num_classes = 1000, init = false}
print("keys r18 " .. table.concat(r18:state_dict_keys(), ","))
r18:load_state_dict(sub("r18."))
r18:eval()
print(string.format("diff r18 %.6g", diff(r18(tensors["in.x"]), tensors["out.r18"])))

local t = skd.models.resnet{depth = 18, width = 0.5, num_classes = 10, init = false}
t:load_state_dict(sub("r18t."))
t:train()
t:zero_grad()
local yt = t(tensors["in.xt"])
print(string.format("diff r18t.out %.6g", diff(yt, tensors["out.r18t"])))
;(yt * tensors["in.proj"]):sum():backward()
local sd = t:state_dict()
for name, g in pairs(sub("grad.r18t.")) do
  local p
  for n, q in t:named_parameters() do if n == name then p = q end end
  print(string.format("rel grad.%s %.6g", name, rel(p.grad, g)))
end
for name, v in pairs(sub("after.r18t.")) do
  print(string.format("diff after.%s %.6g", name, diff(sd[name], v)))
end
print(string.format("diff r18t.num_batches_tracked %d", sd["bn1.num_batches_tracked"]:item() - 4))

local psp = skd.models.pspnet{backbone = {depth = 18, width = 0.25, deep_stem = true, output_stride = 8},
  num_classes = 5, head_channels = 32, init = false}
print("keys psp " .. table.concat(psp:state_dict_keys(), ","))
psp:load_state_dict(sub("psp."))
psp:eval()
psp.always_aux = true
local out = psp(tensors["in.x"])
for _, k in ipairs({"logits", "aux", "feat"}) do
  print(string.format("diff psp.%s %.6g", k, diff(out[k], tensors["out.psp." .. k])))
end
psp:freeze()
out = psp(tensors["in.x"])
print(string.format("diff psp.frozen.logits %.6g", diff(out.logits, tensors["out.psp.logits"])))
'''

passed = failed = 0


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {name}")
    else:
        failed += 1
        print(f"FAIL  {name} {detail}")


tmp = tempfile.mkdtemp(prefix="skd-models-torch-")
try:
    path = os.path.join(tmp, "ref.safetensors")
    script = os.path.join(tmp, "compare.lua")
    write_safetensors(path, tensors)
    with open(script, "w") as f:
        f.write(LUA)
    binary = os.environ.get("SKD_BIN") or os.path.join(ROOT, "build", "skd-lua")
    if not os.path.isabs(binary):
        binary = os.path.join(ROOT, binary)
    env = dict(os.environ, SKD_THREADS=os.environ.get("SKD_THREADS", "2"))
    r = subprocess.run([binary, script, path], capture_output=True, text=True, env=env, cwd=ROOT)
    if r.returncode != 0:
        check("skd-lua ran the comparison", False, r.stderr[-2000:])
    lines = r.stdout.splitlines()
    for line in lines:
        parts = line.split(" ", 2)
        if parts[0] == "keys":
            got = parts[2].split(",")
            want = keys[parts[1]]
            check(f"{parts[1]}: state-dict names and order are PyTorch's ({len(want)} entries)", got == want,
                  f"\n  only in skd: {sorted(set(got) - set(want))[:8]}\n  only in torch: {sorted(set(want) - set(got))[:8]}")
        elif parts[0] == "diff":
            v = float(parts[2])
            check(f"{parts[1]}: max abs diff {v:.3g} < 1e-4", v < 1e-4)
        elif parts[0] == "rel":
            v = float(parts[2])
            check(f"{parts[1]}: max diff {v:.3g} of the gradient's max < 1e-4", v < 1e-4)
    if not any(line.startswith("diff psp.frozen") for line in lines):
        check("every comparison ran", False, r.stderr[-2000:])
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print(f"{passed} passed, {failed} failed")
sys.exit(0 if failed == 0 else 1)
