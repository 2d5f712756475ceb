-- matmul: values by hand, batching and broadcasting against per-matrix products, strided
-- operands (transposition flags, expanded batches), gradients by finite differences,
-- PyTorch where installed, and errors by message.
local T = require "harness"
local R = require "torchref"
skd.manual_seed(5)

local function shape(t) return table.concat(t:size(), "x") end
local function randg(...) return skd.randn(...):requires_grad() end

-- ---------- by hand ----------

T.test("2x3 @ 3x2 and its gradients by hand", function()
  local a = skd.tensor({{1, 2, 3}, {4, 5, 6}}):requires_grad()
  local b = skd.tensor({{1, -1}, {0, 2}, {3, 1}}):requires_grad()
  local c = skd.matmul(a, b)
  -- row 1: 1+0+9, -1+4+3; row 2: 4+0+18, -4+10+6
  T.near(c, {{10, 6}, {22, 12}}, 0)
  c:sum():backward()
  -- dA = ones(2x2) B^T: each row holds B's row sums; dB = A^T ones: A's column sums
  T.near(a.grad, {{0, 2, 4}, {0, 2, 4}}, 0)
  T.near(b.grad, {{5, 5}, {7, 7}, {9, 9}}, 0)
end)

T.test("1-d operands: vector @ matrix, matrix @ vector, dot product", function()
  local m = skd.tensor({{1, 2}, {3, 4}, {5, 6}})
  local v3, v2 = skd.tensor({1, 0, -1}), skd.tensor({2, -1})
  local r = skd.matmul(v3, m)
  T.eq(shape(r), "2")
  T.near(r, {-4, -4}, 0)
  local s = skd.matmul(m, v2)
  T.eq(shape(s), "3")
  T.near(s, {0, 2, 4}, 0)
  local d = skd.matmul(v3, skd.tensor({3, 2, 1}))
  T.eq(d:dim(), 0)
  T.eq(d:item(), 2.0)
  -- a vector against a batch of matrices: (3) @ (2,3,2) -> (2,2)
  local bm = skd.cat({m:reshape(1, 3, 2), (m * 2):reshape(1, 3, 2)}, 1)
  T.near(skd.matmul(v3, bm), {{-4, -4}, {-8, -8}}, 0)
end)

-- A single column or row of the result is a matrix-vector product (BLIS gemv), for every
-- transposition of the operands.
T.test("one-column and one-row products, transposed or not, equal the sums by hand", function()
  local function naive(a, b)
    local m, k, n = a:size(1), a:size(2), b:size(2)
    local c = skd.zeros(m, n)
    for i = 1, m do for j = 1, n do
      local s = 0
      for p = 1, k do s = s + a:get(i, p) * b:get(p, j) end
      c:set(s, i, j)
    end end
    return c
  end
  for _, dims in ipairs({{37, 53, 1}, {1, 53, 29}, {1, 5, 1}, {64, 300, 1}}) do
    local m, k, n = dims[1], dims[2], dims[3]
    local a, b = skd.randn(m, k), skd.randn(k, n)
    local at, bt = skd.randn(k, m):transpose(1, 2), skd.randn(n, k):transpose(1, 2)
    for _, pair in ipairs({{a, b}, {at, b}, {a, bt}, {at, bt}}) do
      T.near(skd.matmul(pair[1], pair[2]), naive(pair[1], pair[2]), 1e-4)
    end
  end
end)

T.test("empty sizes: zero rows give an empty result, a zero inner size gives zeros", function()
  T.eq(shape(skd.matmul(skd.randn(0, 3), skd.randn(3, 4))), "0x4")
  local a, b = randg(2, 0), randg(0, 3)
  local c = skd.matmul(a, b)
  T.near(c, skd.zeros(2, 3), 0)
  c:sum():backward()
  T.eq(shape(b.grad), "0x3")
  local e = skd.matmul(randg(0, 2, 3), randg(3, 4))
  T.eq(shape(e), "0x2x4")
end)

-- ---------- batching, broadcasting, strides ----------

-- the product matrix by matrix, through 2-d matmul on selected slices
local function loop_matmul(a, b, batch)
  local outs = {}
  for i = 1, batch do
    local ai = a:dim() == 3 and a:select(1, i) or a
    local bi = b:dim() == 3 and b:select(1, i) or b
    outs[i] = skd.matmul(ai, bi):unsqueeze(1)
  end
  return skd.cat(outs, 1)
end

T.test("batched (B,M,K) @ (B,K,N) and (B,M,K) @ (K,N) equal matrix-by-matrix products", function()
  local a, b, b2 = skd.randn(4, 5, 3), skd.randn(4, 3, 6), skd.randn(3, 6)
  T.near(skd.matmul(a, b), loop_matmul(a, b, 4), 1e-5)
  T.near(skd.matmul(a, b2), loop_matmul(a, b2, 4), 1e-5)     -- one folded GEMM
  T.near(skd.matmul(b2:transpose(1, 2), a:transpose(2, 3)),  -- (6,3) @ (4,3,5)
         loop_matmul(b2:transpose(1, 2), a:transpose(2, 3), 4), 1e-5)
end)

T.test("ND batch broadcasting: (2,1,3,4) @ (5,4,2) -> (2,5,3,2)", function()
  local a, b = skd.randn(2, 1, 3, 4), skd.randn(5, 4, 2)
  local c = skd.matmul(a, b)
  T.eq(shape(c), "2x5x3x2")
  for i = 1, 2 do
    for j = 1, 5 do
      T.near(c:select(1, i):select(1, j), skd.matmul(a:select(1, i):select(1, 1), b:select(1, j)), 1e-5)
    end
  end
end)

T.test("transposed, narrowed and expanded operands read in place give the copied result", function()
  local a, b = skd.randn(3, 7, 5), skd.randn(3, 5, 4)
  local at = a:transpose(2, 3):contiguous():transpose(2, 3)   -- column-major matrices
  local bt = b:transpose(2, 3):contiguous():transpose(2, 3)
  T.ok(not at:is_contiguous() and not bt:is_contiguous())
  local want = skd.matmul(a, b)
  T.near(skd.matmul(at, bt), want, 1e-5)
  T.near(skd.matmul(at, b), want, 1e-5)
  -- a row band of a wider matrix (row stride 9, not 5)
  local wide = skd.randn(7, 9)
  T.near(skd.matmul(wide:narrow(2, 3, 5), b:select(1, 1)),
         skd.matmul(wide:narrow(2, 3, 5):contiguous(), b:select(1, 1)), 1e-5)
  -- a batch made by expand (batch stride 0)
  local m = skd.randn(1, 5, 4)
  local e = m:expand(3, 5, 4)
  T.near(skd.matmul(a, e), skd.matmul(a, m:reshape(5, 4)), 1e-5)
  -- a general strided view (neither matrix stride is 1: strides 12 and 3) is copied
  local s = skd.randn(5, 4, 3):select(3, 2)
  local m2 = skd.randn(4, 2)
  T.near(skd.matmul(s, m2), skd.matmul(s:contiguous(), m2), 1e-5)
end)

T.test("results are bit-identical across runs", function()
  local a, b = randg(6, 33, 17), randg(17, 9)
  local function run()
    a.grad, b.grad = nil, nil
    local c = skd.matmul(a, b)
    ;(c * c):sum():backward()
    return c, a.grad, b.grad
  end
  local x, y = {run()}, {run()}
  for k = 1, 3 do T.near(x[k], y[k], 0) end
end)

-- ---------- gradients by finite differences ----------

for _, c in ipairs({
  {"2-d", function() return randg(3, 4), randg(4, 5) end},
  {"batched (B,M,K) @ (B,K,N)", function() return randg(3, 2, 4), randg(3, 4, 3) end},
  {"(…,M,K) @ (K,N): batch folded into rows", function() return randg(2, 3, 2, 4), randg(4, 3) end},
  {"(M,K) @ (B,K,N): A summed over the batch", function() return randg(2, 4), randg(3, 4, 3) end},
  {"both broadcast: (2,1,3,4) @ (1,3,4,2)", function() return randg(2, 1, 3, 4), randg(1, 3, 4, 2) end},
  {"vector @ batch, matrix @ vector", function() return randg(4), randg(2, 4, 3) end},
  {"matrix @ vector", function() return randg(3, 4), randg(4) end},
}) do
  T.test("gradcheck matmul " .. c[1], function()
    local a, b = c[2]()
    T.gradcheck(function(x, y) return skd.matmul(x, y) end, {a, b}, {eps = 1e-2, atol = 1e-3})
  end)
end

T.test("gradcheck matmul on transposed views (transposition flags)", function()
  T.gradcheck(function(x, y) return skd.matmul(x:transpose(1, 2), y:transpose(2, 3)) end,
              {randg(5, 3), randg(2, 4, 5)})
end)

T.test("gradcheck matmul through an expanded operand (gradient summed over the batch)", function()
  local m, a = randg(1, 4, 3), randg(3, 2, 4)
  T.gradcheck(function(x, y) return skd.matmul(x, y:expand(3, 4, 3)) end, {a, m})
end)

-- ---------- PyTorch as the reference ----------

local has_torch, why = R.available()
if not has_torch then
  T.skip("matmul against PyTorch", why)
else
  local cases = {
    {"2-d", {7, 5}, {5, 3}},
    {"batched", {4, 6, 5}, {4, 5, 3}},
    {"(…,M,K) @ (K,N)", {2, 3, 6, 5}, {5, 4}},
    {"(M,K) @ (B,K,N)", {6, 5}, {3, 5, 4}},
    {"broadcast both", {2, 1, 3, 5}, {4, 5, 2}},
    {"vector @ batch", {5}, {3, 5, 2}},
    {"batch @ vector", {2, 3, 5}, {5}},
  }
  T.test("matmul forward and gradients match PyTorch", function()
    local code, outs, inputs, ours = {}, {}, {}, {}
    for k, c in ipairs(cases) do
      local a, b = randg(table.unpack(c[2])), randg(table.unpack(c[3]))
      local y = skd.matmul(a, b)
      local r = y:dim() == 0 and skd.randn(1):reshape({}) or skd.randn(table.unpack(y:size()))
      ;(y * r):sum():backward()
      inputs["a" .. k], inputs["b" .. k], inputs["r" .. k] = a, b, r
      ours[k] = {y = y, ga = a.grad, gb = b.grad}
      code[#code + 1] = string.format(table.concat({
        "a, b = a%d.clone().requires_grad_(), b%d.clone().requires_grad_()",
        "y%d = torch.matmul(a, b)",
        "(y%d * r%d).sum().backward()",
        "ga%d, gb%d = a.grad, b.grad"}, "\n"), k, k, k, k, k, k, k)
      for _, o in ipairs({"y", "ga", "gb"}) do outs[#outs + 1] = o .. k end
    end
    local ref = R.run(table.concat(code, "\n"), inputs, outs)
    for k, c in ipairs(cases) do
      T.eq(shape(ours[k].y), shape(ref["y" .. k]), c[1] .. " shape")
      for _, o in ipairs({"y", "ga", "gb"}) do
        T.near(ours[k][o], ref[o .. k], 1e-4, c[1] .. " " .. o)
      end
    end
  end)
end

-- ---------- bad input ----------

T.test("bad matmul calls raise errors naming matmul and the shapes", function()
  local bad = {
    {function() skd.matmul(skd.randn(2, 3), skd.randn(4, 5)) end,
     "matmul: inner dimensions differ (2x3 @ 4x5)"},
    {function() skd.matmul(skd.randn(3), skd.randn(4)) end, "matmul", "inner dimensions", "3 @ 4"},
    {function() skd.matmul(skd.randn(2, 3, 4), skd.randn(5, 4, 2)) end,
     "matmul", "batch dimensions cannot be broadcast", "2x3x4 @ 5x4x2"},
    {function() skd.matmul(skd.randn(2, 3):int(), skd.randn(3, 2)) end, "matmul", "float32", "int32", "2x3 @ 3x2"},
    {function() skd.matmul(skd.randn(2, 3), skd.tensor(1):reshape({})) end, "matmul", "at least 1 dimension", "2x3 @ scalar"},
    {function() skd.matmul(skd.randn(2, 3), nil) end, "tensor expected"},
  }
  for i, b in ipairs(bad) do
    local ok, err = pcall(T.raises, b[1], table.unpack(b, 2))
    if not ok then error("bad call " .. i .. ": " .. tostring(err)) end
  end
end)

T.test("a large product split over threads equals the one-thread product bit for bit", function()
  skd.manual_seed(3)
  local cases = {
    {skd.randn(96, 300), skd.randn(300, 1000)},                   -- wide: split by columns
    {skd.randn(1000, 300), skd.randn(300, 40)},                   -- tall: split by rows
    {skd.randn(300, 1000):transpose(1, 2), skd.randn(700, 300):transpose(1, 2)}, -- both transposed
    {skd.randn(2, 1000, 64), skd.randn(64, 500)},                 -- a batch folded into one GEMM
  }
  for _, c in ipairs(cases) do
    T.same_at_threads(function() return skd.matmul(c[1], c[2]) end)
  end
  local a, b = skd.randn(257, 129), skd.randn(129, 1001)     -- uneven slabs
  local ref = (a:reshape(257, 129, 1) * b:reshape(1, 129, 1001)):sum(2):reshape(257, 1001)
  T.near(skd.matmul(a, b), ref, 1e-3)
end)

T.test("skd.blis(): the AVX-512 kernels where the CPU has them, one BLIS thread", function()
  local b = skd.blis()
  T.eq(type(b.arch), "string")
  T.eq(b.threads, 1, "BLIS single-threaded unless SKD_BLIS_THREADS says otherwise")
  local f = io.open("/proc/cpuinfo")
  local info = f and f:read("a") or ""
  if f then f:close() end
  local flags = info:match("\nflags%s*:([^\n]*)") or ""
  local avx512 = true
  for _, x in ipairs({"avx512f", "avx512dq", "avx512bw", "avx512vl"}) do
    if not flags:find(" " .. x .. " ", 1, true) and not flags:find(" " .. x .. "$") then avx512 = false end
  end
  if avx512 and not os.getenv("SKD_BLIS_ARCH") and not os.getenv("BLIS_ARCH_TYPE") then
    T.eq(b.arch, "skx")
  else
    print("      (no AVX-512 here, or a kernel choice set in the environment: arch " .. b.arch .. ")")
  end
  -- SKD_BLIS_ARCH=blis keeps BLIS's own choice; the products agree with the skx ones
  local bin = os.getenv("SKD_BIN") or "./build/skd-lua"
  local p = io.popen("SKD_BLIS_ARCH=blis " .. bin .. [[ -e "skd.manual_seed(1); local a, c = skd.randn(64, 300), skd.randn(300, 80); io.write(skd.blis().arch, ' ', string.format('%.6f', skd.matmul(a, c):sum():item()))"]])
  local out = p:read("a"); p:close()
  local arch, v = out:match("^(%S+) (%S+)$")
  T.ok(arch ~= nil, "the child printed its kernels: " .. out)
  skd.manual_seed(1)
  local a, c = skd.randn(64, 300), skd.randn(300, 80)
  T.near(tonumber(v), skd.matmul(a, c):sum():item(), 1e-2)
end)

T.done()
