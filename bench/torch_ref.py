#!/usr/bin/env python3
"""bench/torch_ref.py — the PyTorch side of bench/compare.sh (issue 7): the same networks as
skd.models, written here in torch.nn, and the distillation step written the way the authors'
code does it (N×N affinity materialised with torch.bmm, soft-target KL, WGAN-GP through
torch.autograd.grad(create_graph=True)). A benchmark, never a test, and never a dependency of
skd: compare.sh runs it with /usr/bin/python3 (Debian's python3-torch 1.13) or $SKD_PYTHON.

One case per process, so that the peak resident memory (VmHWM) belongs to that case alone:

  torch_ref.py student  WIDTH HxW BATCH RUNS    forward / backward / SGD update of PSPNet-R18
  torch_ref.py teacher  DEPTH HxW BATCH RUNS    eval + no_grad forward of PSPNet-R50/101
  torch_ref.py distill  TDEPTH WIDTH HxW BATCH RUNS   one full distillation step (method.md §0)
  torch_ref.py pairwise HxW CS CT RUNS          L_pa at β = 1, N×N materialised: value + backward
  torch_ref.py layers   WIDTH HxW BATCH RUNS    per-conv forward times of the student
                                              (WIDTH r50 or r101: of the teacher, eval, no grad)

Output: lines "R side=torch case=<case> metric=<m> median=<s> min=<s> n=<runs>" (seconds) and
"R side=torch case=<case> metric=<m> value=<v>" (hwm_kib, base_kib, params, macs...), the
format bench/bench_vs_torch.lua prints too; compare.sh pairs them.
"""
import os
import statistics
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # compare.sh checks first; this is for a direct call
    print("torch_ref.py: PyTorch is not installed for %s; skipped" % sys.executable)
    sys.exit(0)

THREADS = int(os.environ.get("SKD_THREADS", "2"))
torch.set_num_threads(THREADS)
torch.manual_seed(1)
NUM_CLASSES = 19


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


BASE_KIB = status_kib("VmRSS")  # the interpreter with torch imported, before any case


def emit(case, metric, times=None, value=None):
    if times is not None:
        print("R side=torch case=%s metric=%s median=%.6f min=%.6f n=%d"
              % (case, metric, statistics.median(times), min(times), len(times)))
    else:
        print("R side=torch case=%s metric=%s value=%s" % (case, metric, value))
    sys.stdout.flush()


def emit_memory(case):
    emit(case, "hwm_kib", value=status_kib("VmHWM"))
    emit(case, "base_kib", value=BASE_KIB)
    emit(case, "threads", value=torch.get_num_threads())
    with open("/proc/loadavg") as f:  # how much the machine was shared meanwhile
        emit(case, "load", value=f.read().split()[0])


BUDGET = float(os.environ.get("SKD_BENCH_BUDGET", "0") or 0)
MIN_RUNS = 3


def over_budget(times):
    """SKD_BENCH_BUDGET (seconds, 0 = none): stop a case's timed runs once they have used that
    much time and at least MIN_RUNS are done (bench_vs_torch.lua applies the same rule)."""
    return BUDGET > 0 and len(times) >= MIN_RUNS and sum(times) > BUDGET


def size_of(s):
    h, w = s.lower().split("x")
    return int(h), int(w)


# ---------------------------------------------------------------- networks (method.md §4)
# Same layer order, channel counts, dilations and parameter names as lua/skd/models/*.lua.

def ch(c, width):
    return max(1, int(c * width + 0.5))


def conv3x3(cin, cout, stride=1, dilation=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride, dilation, downsample):
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


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride, dilation, downsample):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = self.downsample(x) if self.downsample is not None else x
        return self.relu(out + identity)


CONFIGS = {18: (BasicBlock, [2, 2, 2, 2]), 50: (Bottleneck, [3, 4, 6, 3]),
           101: (Bottleneck, [3, 4, 23, 3])}


class ResNet(nn.Module):
    """Deep stem (three 3×3), output stride 8: layer3/layer4 dilated 2/4, the first block of a
    dilated stage at half the stage's dilation (method.md §4)."""

    def __init__(self, depth, width):
        super().__init__()
        block, counts = CONFIGS[depth]
        self.conv1 = conv3x3(3, ch(64, width), 2)
        self.bn1 = nn.BatchNorm2d(ch(64, width))
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(ch(64, width), ch(64, width))
        self.bn2 = nn.BatchNorm2d(ch(64, width))
        self.conv3 = conv3x3(ch(64, width), ch(128, width))
        self.bn3 = nn.BatchNorm2d(ch(128, width))
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.inplanes, self.dilation = ch(128, width), 1
        self.layer1 = self.make_layer(block, ch(64, width), counts[0], 1, False)
        self.layer2 = self.make_layer(block, ch(128, width), counts[1], 2, False)
        self.layer3_channels = ch(256, width) * block.expansion
        self.layer3 = self.make_layer(block, ch(256, width), counts[2], 2, True)
        self.layer4 = self.make_layer(block, ch(512, width), counts[3], 2, True)
        self.out_channels = ch(512, width) * block.expansion
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def make_layer(self, block, planes, blocks, stride, dilate):
        previous = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, previous, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, 1, self.dilation, None) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.relu(self.bn3(self.conv3(x)))
        x = self.layer2(self.layer1(self.maxpool(x)))
        x3 = self.layer3(x)
        return self.layer4(x3), x3


class PPM(nn.Module):
    def __init__(self, cin, bins=(1, 2, 3, 6)):
        super().__init__()
        red = max(1, cin // 4)
        self.stages = nn.ModuleList([nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(cin, red, 1, bias=False),
                                                   nn.BatchNorm2d(red), nn.ReLU(inplace=True)) for b in bins])
        self.out_channels = cin + len(bins) * red

    def forward(self, x):
        size = x.shape[2:]
        return torch.cat([x] + [F.interpolate(s(x), size, mode="bilinear", align_corners=True)
                                for s in self.stages], 1)


class PSPNet(nn.Module):
    def __init__(self, depth, width, head, num_classes=NUM_CLASSES):
        super().__init__()
        self.backbone = ResNet(depth, width)
        self.ppm = PPM(self.backbone.out_channels)
        self.head = nn.Sequential(nn.Conv2d(self.ppm.out_channels, head, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(head), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(head, num_classes, 1)
        self.aux = nn.Sequential(nn.Conv2d(self.backbone.layer3_channels, 256, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(256), nn.ReLU(inplace=True), nn.Dropout2d(0.1),
                                 nn.Conv2d(256, num_classes, 1))

    def forward(self, x):
        x4, x3 = self.backbone(x)
        feat = self.head(self.ppm(x4))
        out = {"logits": self.classifier(self.dropout(feat)), "feat": feat}
        if self.training:
            out["aux"] = self.aux(x3)
        return out


def student(width):
    return PSPNet(18, width, 128)


def teacher(depth):
    return PSPNet(depth, 1.0, 512)


# ---------------------------------------------------------------- the critic (method.md §3)

class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.inner = max(1, c // 8)
        self.query_conv = nn.Conv2d(c, self.inner, 1)
        self.key_conv = nn.Conv2d(c, self.inner, 1)
        self.value_conv = nn.Conv2d(c, c, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        b, c, h, w = x.shape
        q = self.query_conv(x).view(b, self.inner, h * w).permute(0, 2, 1)
        k = self.key_conv(x).view(b, self.inner, h * w)
        attn = torch.softmax(torch.bmm(q, k), dim=-1)
        v = self.value_conv(x).view(b, c, h * w)
        out = torch.bmm(v, attn.permute(0, 2, 1)).view(b, c, h, w)
        return self.gamma * out + x


def sn_block(cin, cout):
    return nn.Sequential(nn.utils.spectral_norm(nn.Conv2d(cin, cout, 4, 2, 1)), nn.LeakyReLU(0.1))


class Discriminator(nn.Module):
    """SAGAN critic on concat(softmax(z), image resized to h×w); a map smaller than 16 is
    enlarged first, and a last map that is not 4×4 is averaged and scored with the 4×4
    kernel summed over its taps (as lua/skd/models/discriminator.lua)."""

    def __init__(self, cin, w=64):
        super().__init__()
        self.l1, self.l2, self.l3 = sn_block(cin, w), sn_block(w, 2 * w), sn_block(2 * w, 4 * w)
        self.attn1 = SelfAttention(4 * w)
        self.l4 = sn_block(4 * w, 8 * w)
        self.attn2 = SelfAttention(8 * w)
        self.last = nn.Conv2d(8 * w, 1, 4)

    def forward(self, x):
        b, _, h, w = x.shape
        short = min(h, w)
        if short < 16:
            f = -(-16 // short)
            x = F.interpolate(x, (h * f, w * f), mode="bilinear", align_corners=True)
        out = self.attn2(self.l4(self.attn1(self.l3(self.l2(self.l1(x))))))
        if out.shape[2] == 4 and out.shape[3] == 4:
            return self.last(out).view(b)
        pooled = out.mean((2, 3))
        kernel = self.last.weight.sum((2, 3))
        return (pooled @ kernel.t() + self.last.bias).view(b)


# ---------------------------------------------------------------- losses, authors' way

def cross_entropy(z, y):
    z = F.interpolate(z, y.shape[1:], mode="bilinear", align_corners=True)
    return F.cross_entropy(z, y, ignore_index=255)


def pixel_kl(zs, zt):
    b, _, h, w = zs.shape
    qt = torch.softmax(zt, 1)
    return (qt * (torch.log_softmax(zt, 1) - torch.log_softmax(zs, 1))).sum() / (b * h * w)


def nodes(f, beta):
    if beta > 1:
        f = F.avg_pool2d(f, beta, beta, ceil_mode=True, count_include_pad=False)
    b, c = f.shape[:2]
    f = f.reshape(b, c, -1)
    return f / (f.norm(2, dim=1, keepdim=True) + 1e-8)


def pairwise_nxn(fs, ft, beta):
    """The authors' way: both N×N affinities materialised (torch.bmm), squared difference mean."""
    s, t = nodes(fs, beta), nodes(ft.detach(), beta)
    a_s = torch.bmm(s.transpose(1, 2), s)
    a_t = torch.bmm(t.transpose(1, 2), t)
    return ((a_s - a_t) ** 2).mean()


def critic_input(z, image):
    img = F.interpolate(image, z.shape[2:], mode="bilinear", align_corners=True)
    return torch.cat([torch.softmax(z, 1), img], 1)


def gradient_penalty(D, s_in, t_in):
    eps = torch.rand(s_in.shape[0], 1, 1, 1)
    xhat = (eps * t_in + (1 - eps) * s_in).requires_grad_(True)
    g, = torch.autograd.grad(D(xhat).sum(), xhat, create_graph=True)
    return ((g.view(g.shape[0], -1).norm(2, dim=1) - 1) ** 2).mean()


# ---------------------------------------------------------------- cases

def inputs(batch, h, w):
    x = torch.randn(batch, 3, h, w)
    y = torch.randint(0, NUM_CLASSES, (batch, h, w))
    y[:, :4, :] = 255  # a few ignored pixels
    return x, y


def sgd(model, lr=0.01):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)


def case_student(width, size, batch, runs):
    h, w = size_of(size)
    case = "student/w%s/%s/b%d" % (width, size, batch)
    net = student(float(width)).train()
    opt = sgd(net)
    x, y = inputs(batch, h, w)
    t = {"fwd": [], "bwd": [], "update": [], "total": [], "cpu": []}
    for it in range(runs + 1):  # the first is the warm-up
        c0 = time.process_time()
        t0 = time.perf_counter()
        out = net(x)
        loss = cross_entropy(out["logits"], y) + 0.4 * cross_entropy(out["aux"], y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=False)
        t3 = time.perf_counter()
        if it > 0:
            for k, v in (("fwd", t1 - t0), ("bwd", t2 - t1), ("update", t3 - t2), ("total", t3 - t0),
                         ("cpu", time.process_time() - c0)):
                t[k].append(v)
        if over_budget(t["total"]):
            break
    for k in ("fwd", "bwd", "update", "total", "cpu"):
        emit(case, k, t[k])
    emit(case, "params", value=sum(p.numel() for p in net.parameters()))
    emit_memory(case)


def case_teacher(depth, size, batch, runs):
    h, w = size_of(size)
    case = "teacher/r%s/%s/b%d" % (depth, size, batch)
    net = teacher(int(depth)).eval()
    x = torch.randn(batch, 3, h, w)
    times, cpu = [], []
    with torch.no_grad():
        for it in range(runs + 1):
            c0 = time.process_time()
            t0 = time.perf_counter()
            net(x)
            if it > 0:
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                if over_budget(times):
                    break
    emit(case, "fwd", times)
    emit(case, "cpu", cpu)
    emit(case, "params", value=sum(p.numel() for p in net.parameters()))
    emit_memory(case)


# method.md §0 defaults: ce 1, aux 0.4, pi 10, pa 10 (β = 2, avg), ho 0.1, λ_gp 10
W = {"ce": 1.0, "aux": 0.4, "pi": 10.0, "pa": 10.0, "ho": 0.1, "gp": 10.0}


def case_distill(tdepth, width, size, batch, runs):
    h, w = size_of(size)
    case = "distill/r%s-w%s/%s/b%d" % (tdepth, width, size, batch)
    t_net = teacher(int(tdepth)).eval()
    for p in t_net.parameters():
        p.requires_grad_(False)
    s_net = student(float(width)).train()
    critic = Discriminator(NUM_CLASSES + 3).train()
    opt = sgd(s_net)
    copt = torch.optim.SGD(critic.parameters(), lr=4e-4, momentum=0.9, weight_decay=5e-4)
    x, y = inputs(batch, h, w)
    t = {"teacher": [], "student": [], "critic": [], "total": [], "cpu": []}
    for it in range(runs + 1):
        c0 = time.process_time()
        t0 = time.perf_counter()
        with torch.no_grad():
            tout = t_net(x)
        t1 = time.perf_counter()
        out = s_net(x)
        loss = W["ce"] * cross_entropy(out["logits"], y) + W["aux"] * cross_entropy(out["aux"], y)
        loss = loss + W["pi"] * pixel_kl(out["logits"], tout["logits"])
        loss = loss + W["pa"] * pairwise_nxn(out["feat"], tout["feat"], 2)
        s_in = critic_input(out["logits"], x)
        t_in = critic_input(tout["logits"], x)
        loss = loss - W["ho"] * critic(s_in).mean()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        copt.zero_grad(set_to_none=False)
        s_d = s_in.detach()
        d_loss = critic(s_d).mean() - critic(t_in).mean() + W["gp"] * gradient_penalty(critic, s_d, t_in)
        (W["ho"] * d_loss).backward()
        copt.step()
        t3 = time.perf_counter()
        if it > 0:
            for k, v in (("teacher", t1 - t0), ("student", t2 - t1), ("critic", t3 - t2), ("total", t3 - t0),
                         ("cpu", time.process_time() - c0)):
                t[k].append(v)
        if over_budget(t["total"]):
            break
    for k in ("teacher", "student", "critic", "total", "cpu"):
        emit(case, k, t[k])
    emit_memory(case)


def case_pairwise(size, cs, ct, runs):
    h, w = size_of(size)
    case = "pairwise/%s/c%s-%s" % (size, cs, ct)
    pre = torch.randn(1, int(cs), h, w)
    fs = torch.relu(pre).requires_grad_(True)
    ft = torch.relu(torch.randn(1, int(ct), h, w))
    times, cpu = [], []
    for it in range(runs + 1):
        fs.grad = None
        c0 = time.process_time()
        t0 = time.perf_counter()
        loss = pairwise_nxn(fs, ft, 1)
        loss.backward()
        if it > 0:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            if over_budget(times):
                break
    emit(case, "total", times)
    emit(case, "cpu", cpu)
    emit(case, "value", value="%.7g" % loss.item())
    emit_memory(case)


def case_layers(width, size, batch, runs):
    """Forward time of every convolution of the student (training mode, autograd on), from
    pre/post forward hooks; names as skd's named_modules."""
    h, w = size_of(size)
    frozen = width.startswith("r")  # "r50", "r101": the teacher in eval mode, no grad
    case = "layers/%s%s/%s/b%d" % ("" if frozen else "w", width, size, batch)
    net = teacher(int(width[1:])).eval() if frozen else student(float(width)).train()
    x, _ = inputs(batch, h, w)
    times, start = {}, {}
    for name, m in net.named_modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_pre_hook(lambda mod, inp, n=name: start.__setitem__(n, time.perf_counter()))
            m.register_forward_hook(lambda mod, inp, out, n=name: times.setdefault(n, []).append(
                time.perf_counter() - start[n]))
    for it in range(runs + 1):
        if it == 1:
            times.clear()
        with torch.set_grad_enabled(not frozen):
            net(x)
    for name, ts in times.items():
        emit(case, "conv:" + name, ts)


CASES = {"student": case_student, "teacher": case_teacher, "distill": case_distill,
         "pairwise": case_pairwise, "layers": case_layers}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in CASES:
        print(__doc__)
        sys.exit(2)
    fn = CASES[sys.argv[1]]
    args = sys.argv[2:]
    fn(*[int(a) if a.isdigit() else a for a in args])
