-- Checkpoints in safetensors: skd.save / skd.load round trips bit for bit, files made by hand
-- (string.pack, independent of skd's writer) load with their conversions, the writer is atomic,
-- and a fuzzer mutates a valid file in thousands of ways. The fuzzer's oracle is a second
-- safetensors reader written here in Lua (its own strict JSON decoder): for every mutated
-- file both readers must fail, or both succeed with the same tensors to the bit.
local T = require "harness"

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p '" .. dir .. "'"))
local function tmp(name) return dir .. "/" .. name end

local function readfile(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function writefile(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function ls(d)
  local p = io.popen("ls -A '" .. d .. "'")
  local names = {}
  for l in p:lines() do names[#names + 1] = l end
  p:close()
  return names
end

local bytes = skd._tensor_bytes
local function f32bits(bits) return string.pack("<I4", bits) end
local function f32(x) return string.pack("<f", x) end

local function sizes_equal(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

-- ---------------------------------------------------------------------------------------------
-- Round trips

T.test("round trip is bit-exact: NaN, infinities, signed zero, denormals, int32 extremes", function()
  local floats = {0.0, -0.0, 1.0, -1.5, math.huge, -math.huge, 0 / 0, -(0 / 0), 1e-40, -1.4e-45,
                  3.4028234663852886e38, 1.1754943508222875e-38, 1 / 3}
  local ints = {-7, -2147483648, 2147483647, 0, -1, 1}
  local src = {
    f = skd.tensor(floats),
    i = skd.tensor(ints, {dtype = "int32"}),
    scalar = skd.tensor(2.5),
    empty = skd.zeros(0, 3),
    m = skd.randn(3, 4, 5),
  }
  local path = tmp("round.safetensors")
  skd.save(path, src)
  local got = skd.load(path)
  local n = 0
  for name, t in pairs(src) do
    n = n + 1
    T.ok(got[name], "missing " .. name)
    T.eq(got[name]:dtype(), t:dtype(), name .. " dtype")
    T.ok(sizes_equal(got[name]:size(), t:size()), name .. " shape")
    T.eq(bytes(got[name]), bytes(t), name .. " bytes")
  end
  local c = 0
  for _ in pairs(got) do c = c + 1 end
  T.eq(c, n, "tensor count")
  T.eq(got.scalar:dim(), 0)
  T.eq(got.empty:numel(), 0)
  T.eq(got.i:get(2), -2147483648)
  T.eq(got.i:get(3), 2147483647)
  -- the file's data for f is exactly the float32 bytes of the values
  local want = {}
  for k, v in ipairs(floats) do want[k] = f32(v) end
  T.ok(readfile(path):find(table.concat(want), 1, true), "raw little-endian float32 bytes in file")
  -- saving what was loaded gives the same file, byte for byte
  skd.save(tmp("round2.safetensors"), got)
  T.eq(readfile(tmp("round2.safetensors")), readfile(path), "re-saved file")
end)

T.test("non-contiguous views are written contiguously", function()
  local a = skd.randn(4, 5)
  local views = {
    tr = a:transpose(1, 2), nar = a:narrow(2, 2, 3), sel = a:select(1, 3),
    perm = skd.randn(2, 3, 4):permute(3, 1, 2), ex = skd.randn(3, 1):expand(3, 4),
  }
  local path = tmp("views.safetensors")
  skd.save(path, views)
  local got = skd.load(path)
  for name, v in pairs(views) do
    T.ok(sizes_equal(got[name]:size(), v:size()), name .. " shape")
    T.ok(got[name]:is_contiguous(), name .. " contiguous")
    T.eq(bytes(got[name]), bytes(v:contiguous()), name .. " values")
    T.near(got[name], v, 0, name)
  end
end)

T.test("the file is deterministic, names sorted, header 8-byte aligned", function()
  local t = {zeta = skd.ones(2), alpha = skd.zeros(3), ["layer1.0.conv1.weight"] = skd.ones(1, 1, 3, 3)}
  skd.save(tmp("d1.safetensors"), t, {b = "2", a = "1"})
  skd.save(tmp("d2.safetensors"), t, {a = "1", b = "2"})
  local s = readfile(tmp("d1.safetensors"))
  T.eq(s, readfile(tmp("d2.safetensors")), "same bytes")
  local n = string.unpack("<I8", s)
  T.eq((8 + n) % 8, 0, "data aligned")
  local h = s:sub(9, 8 + n)
  local pa, pl, pz = h:find('"alpha"', 1, true), h:find('"layer1', 1, true), h:find('"zeta"', 1, true)
  T.ok(pa < pl and pl < pz, "sorted names: " .. h)
  T.ok(h:find('"__metadata__":{"a":"1","b":"2"}', 1, true), "metadata first and sorted: " .. h)
end)

T.test("metadata round trip: strings, numbers as tostring, unicode and escapes", function()
  local meta = {
    role = "teacher", step = 1200, seed = 42, lr = 0.01, big = 1e100, three = 3.0,
    hash = "sha256:9f86d081884c7d659a2feaa0c55ad015",
    unicode = "αβγ ✓ 😀", quotes = 'a "q" \\ back\\slash\n\t\1\31 ctrl /', empty = "",
  }
  local path = tmp("meta.safetensors")
  skd.save(path, {w = skd.ones(1)}, meta)
  local _, got = skd.load(path)
  for k, v in pairs(meta) do T.eq(got[k], tostring(v), k) end
  local c = 0
  for _ in pairs(got) do c = c + 1 end
  local want = 0
  for _ in pairs(meta) do want = want + 1 end
  T.eq(c, want, "key count")
  skd.save(path, {}, {only = "metadata"})
  local t2, m2 = skd.load(path)
  T.eq(next(t2), nil, "no tensors")
  T.eq(m2.only, "metadata")
  local _, m3 = skd.load(tmp("round.safetensors"))
  T.eq(next(m3), nil, "no metadata: empty table")
end)

T.test("save: bad arguments are errors naming the key and the path", function()
  local p = tmp("bad.safetensors")
  T.raises(function() skd.save(p, {w = skd.ones(1)}, {x = {}}) end, "save: '" .. p .. "'",
           "metadata 'x' is a table")
  T.raises(function() skd.save(p, {w = skd.ones(1)}, {flag = true}) end, "metadata 'flag' is a boolean")
  T.raises(function() skd.save(p, {w = skd.ones(1)}, {[1] = "a"}) end, "metadata keys must be strings")
  T.raises(function() skd.save(p, {w = 5}) end, "'w' is a number, not a tensor")
  T.raises(function() skd.save(p, {skd.ones(1)}) end, "keys must be strings, got a number key")
  T.raises(function() skd.save(p, {__metadata__ = skd.ones(1)}) end, "'__metadata__' is reserved")
  T.raises(function() skd.save(p, {["\xff\xfe"] = skd.ones(1)}) end, "not valid UTF-8")
  T.raises(function() skd.save(p, {["a\0b"] = skd.ones(1)}) end, "NUL")
  T.raises(function() skd.save(p, {w = skd.ones(1)}, {k = "\xc0\x80"}) end, "not UTF-8")
  T.raises(function() skd.save(p, "w") end, "expects a table")
  T.raises(function() skd.save(p, {}, "m") end, "metadata must be a table")
  T.ok(not exists(p), "nothing written")
end)

-- ---------------------------------------------------------------------------------------------
-- Atomic writes

T.test("atomic write: errors name the path, old file intact, no temporary left", function()
  local good = tmp("atomic.safetensors")
  skd.save(good, {w = skd.ones(4)}, {v = "old"})
  local before = readfile(good)
  -- a missing directory
  local missing = dir .. "/no/such/dir/x.safetensors"
  T.raises(function() skd.save(missing, {w = skd.ones(1)}) end, "save: '" .. missing .. "'",
           "cannot create a temporary file in '" .. dir .. "/no/such/dir'", "No such file")
  -- the target is a directory: the rename fails after the data was written
  local sub = tmp("adir")
  assert(os.execute("mkdir -p '" .. sub .. "'"))
  T.raises(function() skd.save(sub, {w = skd.ones(1)}) end, "save: '" .. sub .. "'", "unchanged")
  -- saving over a file keeps its permission bits
  assert(os.execute("chmod 640 '" .. good .. "'"))
  skd.save(good, {w = skd.ones(4)}, {v = "old"})
  local p = io.popen("stat -c %a '" .. good .. "'")
  T.eq(p:read("l"), "640", "mode kept")
  p:close()
  T.eq(readfile(good), before, "same content rewritten")
  for _, name in ipairs(ls(dir)) do T.ok(not name:find("%.tmp%-"), "temporary left: " .. name) end
end)

T.test("atomic write: a read-only directory is an error and changes nothing", function()
  local ro = tmp("ro")
  assert(os.execute("mkdir -p '" .. ro .. "'"))
  skd.save(ro .. "/x.safetensors", {w = skd.ones(2)})
  local before = readfile(ro .. "/x.safetensors")
  assert(os.execute("chmod 555 '" .. ro .. "'"))
  local ok, err = pcall(skd.save, ro .. "/x.safetensors", {w = skd.zeros(2)})
  assert(os.execute("chmod 755 '" .. ro .. "'"))
  if ok then -- root ignores directory permissions: the write legitimately succeeded
    print("      (running as root: permissions do not stop writes; checked the other failures)")
    return
  end
  T.ok(err:find("save: '" .. ro .. "/x.safetensors'", 1, true) and err:find("Permission denied"), err)
  T.eq(readfile(ro .. "/x.safetensors"), before, "old file intact")
end)

local bin = os.getenv("SKD_BIN") or "./build/skd-lua"

T.test("atomic write: disk full (file size limit) leaves the old file and no partial file", function()
  local full = tmp("full")
  assert(os.execute("mkdir -p '" .. full .. "'"))
  local old = full .. "/ck.safetensors"
  skd.save(old, {w = skd.ones(8)}, {v = "old"})
  local before = readfile(old)
  -- A child whose file size limit is 8 KiB, SIGXFSZ ignored so write() fails with EFBIG:
  -- to the writer it looks like a full disk.
  local script = full .. "/child.lua"
  writefile(script, [[
    for _, p in ipairs({arg[1], arg[2]}) do
      local ok, err = pcall(skd.save, p, {w = skd.ones(100000)}, {v = "new"})
      print(ok and "SAVED" or err)
    end]])
  local cmd = string.format("bash -c \"trap '' XFSZ; ulimit -f 8; exec '%s' '%s' '%s' '%s'\" 2>&1",
                            bin, script, old, full .. "/new.safetensors")
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  T.ok(out:find("save: '" .. old .. "': writing failed: File too large", 1, true), out)
  T.ok(out:find("save: '" .. full .. "/new.safetensors'", 1, true), out)
  T.eq(readfile(old), before, "old file intact")
  local _, m = skd.load(old)
  T.eq(m.v, "old")
  T.ok(not exists(full .. "/new.safetensors"), "no partial new file")
  for _, name in ipairs(ls(full)) do T.ok(not name:find("%.tmp%-"), "temporary left: " .. name) end
end)

-- ---------------------------------------------------------------------------------------------
-- Files made by hand, independent of skd's writer

local function jstr(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return c == '"' and '\\"' or c == "\\" and "\\\\" or string.format("\\u%04x", c:byte())
  end) .. '"'
end

-- entries: {{name=, dtype=, shape={..}, data=bytes}, ...}; meta: {{key, value}, ...}
local function handmade(entries, meta)
  local parts, data, off = {}, {}, 0
  if meta then
    local kv = {}
    for _, m in ipairs(meta) do kv[#kv + 1] = jstr(m[1]) .. ": " .. jstr(m[2]) end
    parts[#parts + 1] = '"__metadata__": {' .. table.concat(kv, ", ") .. "}"
  end
  for k, e in ipairs(entries) do
    local b = off
    off = off + #e.data
    local fields = {
      '"dtype": "' .. e.dtype .. '"', '"shape": [' .. table.concat(e.shape, ", ") .. "]",
      string.format('"data_offsets": [%d, %d]', b, off),
    }
    if k % 2 == 0 then fields = {fields[3], fields[1], fields[2]} end -- any field order
    parts[#parts + 1] = "\n  " .. jstr(e.name) .. ": {" .. table.concat(fields, ", ") .. "}"
    data[#data + 1] = e.data
  end
  local header = "{" .. table.concat(parts, ",") .. "\n}  "
  return string.pack("<I8", #header) .. header .. table.concat(data)
end

local function packs(fmt, list)
  local out = {}
  for k, v in ipairs(list) do out[k] = string.pack(fmt, v) end
  return table.concat(out)
end

-- Half to single, the slow way (normalising subnormals bit by bit): the fuzz oracle's
-- conversion, independent of the C one.
local function f16_to_f32_bits(h)
  local sign, exp, mant = (h & 0x8000) << 16, (h >> 10) & 0x1F, h & 0x3FF
  if exp == 0 then
    if mant == 0 then return sign end
    local e = -1
    repeat mant, e = mant << 1, e + 1 until mant & 0x400 ~= 0
    return sign | ((112 - e) << 23) | ((mant & 0x3FF) << 13)
  elseif exp == 31 then
    return sign | 0x7F800000 | (mant << 13)
  end
  return sign | ((exp + 112) << 23) | (mant << 13)
end

T.test("hand-made F16/BF16/F64 load with exact conversions (NaN payloads, subnormals)", function()
  local h16 = {0x0000, 0x8000, 0x3C00, 0xC000, 0x3555, 0x7BFF, 0x0400, 0x0001, 0x03FF, 0x7C00,
               0xFC00, 0x7E00, 0x7C01}
  local want16 = {0x00000000, 0x80000000, 0x3F800000, 0xC0000000, 0x3EAAA000, 0x477FE000,
                  0x38800000, 0x33800000, 0x387FC000, 0x7F800000, 0xFF800000, 0x7FC00000, 0x7F802000}
  local b16 = {0x3F80, 0xC040, 0x7F80, 0x0001, 0x7FC1, 0x8000, 0x4049}
  local f64 = {1 / 3, 1e300, -1e-300, 65504.0, -2.5}
  local path = tmp("hand_f.safetensors")
  writefile(path, handmade({
    {name = "half", dtype = "F16", shape = {#h16}, data = packs("<I2", h16)},
    {name = "brain", dtype = "BF16", shape = {7}, data = packs("<I2", b16)},
    {name = "double", dtype = "F64", shape = {5, 1}, data = packs("<d", f64)},
    {name = "f32nan", dtype = "F32", shape = {2}, data = packs("<I4", {0x7FC00001, 0xFF800001})},
  }, {{"format", "pt"}}))
  local t, m = skd.load(path)
  T.eq(m.format, "pt")
  T.eq(t.half:dtype(), "float32")
  local w = {}
  for k, v in ipairs(want16) do
    w[k] = f32bits(v)
    T.eq(f16_to_f32_bits(h16[k]), v, string.format("oracle for 0x%04x", h16[k]))
  end
  T.eq(bytes(t.half), table.concat(w), "F16 bits")
  T.eq(t.half:get(3), 1.0)
  T.eq(t.half:get(6), 65504.0)
  T.eq(t.half:get(8), 2.0 ^ -24)
  local wb = {}
  for k, v in ipairs(b16) do wb[k] = f32bits(v << 16) end
  T.eq(bytes(t.brain), table.concat(wb), "BF16 bits")
  T.eq(t.brain:get(2), -3.0)
  T.eq(t.brain:get(7), 3.140625)
  T.ok(sizes_equal(t.double:size(), {5, 1}))
  T.eq(bytes(t.double), packs("<f", f64), "F64 rounded to float32")
  T.eq(t.double:get(2, 1), math.huge)
  T.eq(bytes(t.f32nan), packs("<I4", {0x7FC00001, 0xFF800001}), "NaN payloads kept")
end)

T.test("hand-made integer dtypes load as int32; values that do not fit are errors", function()
  local i64 = {-2147483648, 2147483647, 0, -1, 123456789}
  local path = tmp("hand_i.safetensors")
  writefile(path, handmade({
    {name = "steps", dtype = "I64", shape = {5}, data = packs("<i8", i64)},
    {name = "num_batches_tracked", dtype = "I64", shape = {}, data = string.pack("<i8", 3000)},
    {name = "u8", dtype = "U8", shape = {2, 2}, data = "\0\255\7\128"},
    {name = "i8", dtype = "I8", shape = {3}, data = "\128\127\255"},
    {name = "b", dtype = "BOOL", shape = {3}, data = "\0\1\2"},
    {name = "i16", dtype = "I16", shape = {2}, data = packs("<i2", {-32768, 32767})},
    {name = "u16", dtype = "U16", shape = {1}, data = string.pack("<I2", 65535)},
    {name = "u32", dtype = "U32", shape = {1}, data = string.pack("<I4", 2147483647)},
    {name = "u64", dtype = "U64", shape = {1}, data = string.pack("<I8", 7)},
    {name = "i32", dtype = "I32", shape = {1}, data = string.pack("<i4", -5)},
  }))
  local t = skd.load(path)
  T.eq(t.steps:dtype(), "int32")
  T.eq(bytes(t.steps), packs("<i4", i64))
  T.eq(t.num_batches_tracked:dim(), 0)
  T.eq(t.num_batches_tracked:item(), 3000)
  T.eq(bytes(t.u8), packs("<i4", {0, 255, 7, 128}))
  T.eq(bytes(t.i8), packs("<i4", {-128, 127, -1}))
  T.eq(bytes(t.b), packs("<i4", {0, 1, 1}))
  T.eq(bytes(t.i16), packs("<i4", {-32768, 32767}))
  T.eq(t.u16:get(1), 65535)
  T.eq(t.u32:get(1), 2147483647)
  T.eq(t.u64:get(1), 7)
  T.eq(t.i32:get(1), -5)
  for _, c in ipairs({
    {"I64", "<i8", {1, 2147483648}, "holds 2147483648 at flat index 1"},
    {"I64", "<i8", {-2147483649}, "holds -2147483649 at flat index 0"},
    {"U32", "<I4", {4294967295}, "holds 4294967295"},
    {"U64", "<I8", {0, 0, -1}, "holds 18446744073709551615 at flat index 2"},
  }) do
    writefile(path, handmade({{name = "layer1.0.bn1.x", dtype = c[1], shape = {#c[3]}, data = packs(c[2], c[3])}}))
    T.raises(function() skd.load(path) end, "load: '" .. path .. "': tensor 'layer1.0.bn1.x' (" .. c[1] .. ")",
             c[4], "does not fit in int32")
  end
end)

T.test("load: clear errors for each kind of damage", function()
  local p = tmp("err.safetensors")
  local function case(content, ...)
    writefile(p, content)
    T.raises(function() skd.load(p) end, "load: '" .. p .. "': ", ...)
  end
  local function hdr(h, data) return string.pack("<I8", #h) .. h .. (data or "") end
  case("", "shorter than the 8-byte header length")
  case("\1\0\0", "the file is 3 bytes")
  case(string.pack("<I8", 200) .. "{}", "header length 200 exceeds the 2 bytes that follow")
  case(string.pack("<I8", 1 << 40) .. "{}", "is absurd")
  case(string.pack("<i8", -1) .. "{}", "is absurd")
  case(hdr(""), "not valid JSON", "header ends")
  case(hdr("[]"), "header must be a JSON object, got an array")
  case(hdr("{} x"), "garbage after its JSON object")
  case(hdr('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},}', "abcd"), "not valid JSON")
  case(hdr('{"layer1.0.conv1.weight":{"dtype":"F32","shape":[5,5],"data_offsets":[0,100]}}', ("\0"):rep(64)),
       "tensor 'layer1.0.conv1.weight' data_offsets [0, 100] exceed the data size 64")
  case(hdr('{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}', ("\0"):rep(12)),
       "tensor 'w' has 12 bytes at data_offsets [0, 12], but shape [2, 2] of F32 needs 16")
  case(hdr('{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}', ("\0"):rep(8)), "end before they begin")
  case(hdr('{"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}', "\0"), "unsupported dtype \"F8_E4M3\"")
  case(hdr('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', "\0\0\0\0"), "shape entry 1 is negative (-1)")
  case(hdr('{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', "\0\0\0\0"), "not an integer (1.5)")
  case(hdr('{"w":{"dtype":"F32","shape":[NaN],"data_offsets":[0,4]}}', "\0\0\0\0"), "not valid JSON", "found 'N'")
  case(hdr('{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}', "\0\0\0\0"),
       "shape [4294967296, 4294967296] is too large")
  case(hdr('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}', "\0\0\0\0"), "got one number")
  case(hdr('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}', "\0\0\0\0"), "more than two numbers")
  case(hdr('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,99999999999999999999]}}', "\0\0\0\0"), "is too large")
  case(hdr('{"w":{"dtype":"F32","shape":[1]}}', "\0\0\0\0"), "tensor 'w' lacks the field \"data_offsets\"")
  case(hdr('{"w":{"dtype":3,"shape":[1],"data_offsets":[0,4]}}', "\0\0\0\0"), "dtype must be a string, got a number")
  case(hdr('{"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}', "\0\0\0\0"), "shape must be an array")
  case(hdr('{"w":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', "\0\0\0\0"), "repeated field \"dtype\"")
  case(hdr('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}', "\0\0\0\0"), "unknown field \"x\"")
  case(hdr('{"w":[1]}'), "tensor 'w' must be an object")
  case(hdr('{"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}}', "\0\0\0\0"), "more than 8 dimensions")
  case(hdr('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
           ("\0"):rep(12)), "tensor 'b' data_offsets [4, 12] overlap tensor 'a' data_offsets [0, 8]")
  case(hdr('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}',
           ("\0"):rep(12)), "no tensor covers data bytes [4, 8) of 12")
  case(hdr('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', ("\0"):rep(6)), "data bytes [4, 6) of 6")
  case(hdr('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
           ("\0"):rep(8)), "tensor 'a' appears twice")
  case(hdr('{"__metadata__":{"step":5}}'), "metadata 'step' must be a string, got a number")
  case(hdr('{"__metadata__":[]}'), "\"__metadata__\" must be an object of strings")
  case(hdr('{"__metadata__":{"a":"1","a":"2"}}'), "metadata key 'a' appears twice")
  case(hdr('{"__metadata__":{},"__metadata__":{}}'), "\"__metadata__\" appears twice")
  case(hdr('{"a\\u0000b":{}}'), "NUL character")
  case(hdr('{"\\ud800":{}}'), "unpaired surrogate")
  case(hdr('{"\xff":{}}'), "not valid UTF-8")
  case(hdr('{"a\nb":{}}'), "no raw control character")
  case(hdr(("["):rep(100000)), "header must be a JSON object, got an array")
  T.raises(function() skd.load(dir .. "/nope.safetensors") end, "cannot open", "No such file")
  T.raises(function() skd.load(dir) end, "is a directory")
end)

-- ---------------------------------------------------------------------------------------------
-- The oracle: an independent reader. decode(header) is a strict JSON decoder (RFC 8259) that
-- keeps objects as ordered pairs, so duplicates stay visible.

local function json_decode(s)
  local pos = 1
  local function fail(msg) error({msg = msg}, 0) end
  local function ws() pos = s:find("[^ \t\n\r]", pos) or #s + 1 end
  local value
  local escapes = {['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t"}
  local function str()
    pos = pos + 1
    local out = {}
    while true do
      local c = s:byte(pos)
      if not c then fail("unterminated string") end
      if c == 34 then pos = pos + 1 break end
      if c < 32 then fail("control character") end
      if c == 92 then
        local e = s:sub(pos + 1, pos + 1)
        if escapes[e] then
          out[#out + 1], pos = escapes[e], pos + 2
        elseif e == "u" then
          local h = s:match("^%x%x%x%x", pos + 2)
          if not h then fail("bad \\u") end
          local cp = tonumber(h, 16)
          pos = pos + 6
          if cp >= 0xD800 and cp <= 0xDBFF then
            local h2 = s:match("^\\u(%x%x%x%x)", pos)
            local lo = h2 and tonumber(h2, 16)
            if not lo or lo < 0xDC00 or lo > 0xDFFF then fail("unpaired surrogate") end
            cp, pos = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00), pos + 6
          elseif cp >= 0xDC00 and cp <= 0xDFFF then
            fail("unpaired surrogate")
          end
          if cp == 0 then fail("NUL") end
          out[#out + 1] = utf8.char(cp)
        else
          fail("bad escape")
        end
      else
        out[#out + 1], pos = string.char(c), pos + 1
      end
    end
    local r = table.concat(out)
    if not utf8.len(r) then fail("invalid UTF-8") end
    return {kind = "string", v = r}
  end
  local function num()
    local start = pos
    if s:sub(pos, pos) == "-" then pos = pos + 1 end
    if s:sub(pos, pos) == "0" then pos = pos + 1
    elseif s:match("^[1-9]", pos) then pos = s:find("[^0-9]", pos) or #s + 1
    else fail("bad number") end
    if s:sub(pos, pos) == "." then
      if not s:match("^%.%d", pos) then fail("bad fraction") end
      pos = s:find("[^0-9]", pos + 1) or #s + 1
    end
    if s:match("^[eE]", pos) then
      local e = s:match("^[eE][+-]?%d+", pos)
      if not e then fail("bad exponent") end
      pos = pos + #e
    end
    return {kind = "number", v = s:sub(start, pos - 1)}
  end
  local depth = 0
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == '"' then return str() end
    if c == "-" or c:match("%d") then return num() end
    for lit, k in pairs({["true"] = "boolean", ["false"] = "boolean", null = "null"}) do
      if s:sub(pos, pos + #lit - 1) == lit then pos = pos + #lit return {kind = k} end
    end
    if c ~= "{" and c ~= "[" then fail("unexpected") end
    depth = depth + 1
    if depth > 150 then fail("too deep") end
    local close, r = c == "{" and "}" or "]", {kind = c == "{" and "object" or "array"}
    pos = pos + 1
    ws()
    if s:sub(pos, pos) == close then pos = pos + 1 depth = depth - 1 return r end
    while true do
      if close == "}" then
        ws()
        if s:sub(pos, pos) ~= '"' then fail("key") end
        local k = str().v
        ws()
        if s:sub(pos, pos) ~= ":" then fail("colon") end
        pos = pos + 1
        r[#r + 1] = {k, value()}
      else
        r[#r + 1] = value()
      end
      ws()
      local sep = s:sub(pos, pos)
      pos = pos + 1
      if sep == close then break end
      if sep ~= "," then fail("separator") end
    end
    depth = depth - 1
    return r
  end
  local v = value()
  ws()
  if pos <= #s then fail("trailing") end
  return v
end

local SIZES = {BOOL = 1, U8 = 1, I8 = 1, U16 = 2, I16 = 2, U32 = 4, I32 = 4, U64 = 8, I64 = 8,
               F16 = 2, BF16 = 2, F32 = 4, F64 = 8}
local INT_FMT = {BOOL = "<I1", U8 = "<I1", I8 = "<i1", U16 = "<I2", I16 = "<i2", U32 = "<I4",
                 I32 = "<i4", U64 = "<i8", I64 = "<i8"}

local function uint(v)
  if v.kind ~= "number" or not v.v:match("^%d+$") then error({msg = "not a non-negative integer"}, 0) end
  local n = math.tointeger(tonumber(v.v))
  if not n or #v.v > 19 then error({msg = "too large"}, 0) end
  return n
end

-- Returns {name = {dtype=, shape=, bytes=}}, {key = value}; raises {msg=} on a bad file.
local function ref_load(file)
  local function fail(msg) error({msg = msg}, 0) end
  if #file < 8 then fail("short") end
  local n = string.unpack("<i8", file)
  if n < 0 or n > 100 << 20 or n > #file - 8 then fail("header length") end
  local top = json_decode(file:sub(9, 8 + n))
  local data = file:sub(9 + n)
  if top.kind ~= "object" then fail("not an object") end
  local entries, meta, seen_meta, names = {}, {}, false, {}
  for _, kv in ipairs(top) do
    local name, v = kv[1], kv[2]
    if name == "__metadata__" then
      if seen_meta or v.kind ~= "object" then fail("metadata") end
      seen_meta = true
      for _, m in ipairs(v) do
        if m[2].kind ~= "string" or meta[m[1]] then fail("metadata value") end
        meta[m[1]] = m[2].v
      end
    else
      if names[name] or v.kind ~= "object" then fail("entry") end
      local e, fields = {name = name}, {}
      for _, f in ipairs(v) do
        if fields[f[1]] then fail("repeated field") end
        fields[f[1]] = f[2]
        if f[1] == "dtype" then
          if f[2].kind ~= "string" or not SIZES[f[2].v] then fail("dtype") end
          e.dtype = f[2].v
        elseif f[1] == "shape" then
          if f[2].kind ~= "array" or #f[2] > 8 then fail("shape") end
          e.shape = {}
          for k, d in ipairs(f[2]) do e.shape[k] = uint(d) end
        elseif f[1] == "data_offsets" then
          if f[2].kind ~= "array" or #f[2] ~= 2 then fail("offsets") end
          e.b, e.e = uint(f[2][1]), uint(f[2][2])
        else
          fail("unknown field")
        end
      end
      if not (e.dtype and e.shape and e.b) then fail("missing field") end
      names[name] = e
      entries[#entries + 1] = e
    end
  end
  local limit = math.maxinteger // 8
  for _, e in ipairs(entries) do
    if e.e < e.b or e.e > #data then fail("range") end
    local numel, span = 1, 1
    for _, d in ipairs(e.shape) do
      if d > 1 and span > limit // d then fail("too large") end
      span, numel = span * math.max(d, 1), numel * d
    end
    if numel * SIZES[e.dtype] ~= e.e - e.b then fail("size") end
  end
  table.sort(entries, function(a, b)
    if a.b ~= b.b then return a.b < b.b end
    return a.e < b.e
  end)
  local cursor = 0
  for _, e in ipairs(entries) do
    if e.b ~= cursor then fail("overlap or hole") end
    cursor = e.e
  end
  if cursor ~= #data then fail("hole at the end") end
  local out = {}
  for _, e in ipairs(entries) do
    local raw, size, vals = data:sub(e.b + 1, e.e), SIZES[e.dtype], {}
    local count = #raw // size
    for k = 0, count - 1 do
      local piece = raw:sub(k * size + 1, (k + 1) * size)
      if e.dtype == "F32" then vals[#vals + 1] = piece
      elseif e.dtype == "F16" then vals[#vals + 1] = f32bits(f16_to_f32_bits(string.unpack("<I2", piece)))
      elseif e.dtype == "BF16" then vals[#vals + 1] = "\0\0" .. piece
      elseif e.dtype == "F64" then vals[#vals + 1] = f32(string.unpack("<d", piece))
      else
        local v = string.unpack(INT_FMT[e.dtype], piece)
        if e.dtype == "BOOL" and v ~= 0 then v = 1 end
        if e.dtype == "U64" and v < 0 then fail("U64 does not fit") end
        if v < -2147483648 or v > 2147483647 then fail("does not fit") end
        vals[#vals + 1] = string.pack("<i4", v)
      end
    end
    out[e.name] = {dtype = (e.dtype:match("^[FB]") and e.dtype ~= "BOOL") and "float32" or "int32",
                   shape = e.shape, bytes = table.concat(vals)}
  end
  return out, meta
end

-- Loads content with both readers; returns "error" or "load", or raises on any disagreement.
-- The fuzz file lives in memory (/dev/shm) when it can: rewriting a file thousands of times on
-- ext4 waits for the disk each time (its replace-by-truncate heuristic flushes on close).
local shm = io.open("/dev/shm/.skd-probe", "wb")
if shm then shm:close() os.remove("/dev/shm/.skd-probe") end
local fuzz_path = shm and string.format("/dev/shm/skd-fuzz-%s.safetensors", dir:match("[^/]+$"))
                  or tmp("fuzz.safetensors")
local function differential(content, what)
  writefile(fuzz_path, content)
  local ok, t, m = pcall(skd.load, fuzz_path)
  local rok, rt, rm = pcall(ref_load, content)
  if not ok then
    if type(t) ~= "string" or t:sub(1, #fuzz_path + 10) ~= "load: '" .. fuzz_path .. "': " then
      error(what .. ": error without the load prefix: " .. tostring(t))
    end
    if rok then error(what .. ": skd refused a file the reference reads: " .. t) end
    return "error"
  end
  if not rok then error(what .. ": skd loaded a file the reference refuses (" .. tostring(rt.msg or rt) .. ")") end
  for name, r in pairs(rt) do
    local g = t[name]
    if not g then error(what .. ": missing tensor " .. name) end
    if g:dtype() ~= r.dtype or not sizes_equal(g:size(), r.shape) or bytes(g) ~= r.bytes then
      error(what .. ": tensor " .. name .. " differs from the reference")
    end
  end
  for name in pairs(t) do if not rt[name] then error(what .. ": extra tensor " .. name) end end
  for k, v in pairs(rm) do if m[k] ~= v then error(what .. ": metadata " .. k) end end
  for k in pairs(m) do if rm[k] == nil then error(what .. ": extra metadata " .. k) end end
  return "load"
end

-- The valid file every mutation starts from: mixed dtypes, a 0-d and an empty tensor, metadata.
local base = handmade({
  {name = "conv.weight", dtype = "F32", shape = {2, 3}, data = packs("<f", {1.5, -2, 0.25, 3e-39, 7, -0.0})},
  {name = "bn.num_batches_tracked", dtype = "I64", shape = {}, data = string.pack("<i8", 12)},
  {name = "half", dtype = "F16", shape = {3}, data = packs("<I2", {0x3C00, 0x0001, 0x7C00})},
  {name = "label", dtype = "I32", shape = {2}, data = packs("<i4", {-1, 255})},
  {name = "empty", dtype = "F32", shape = {0, 4}, data = ""},
  {name = "bf", dtype = "BF16", shape = {2}, data = packs("<I2", {0x3F80, 0xC040})},
  {name = "mask", dtype = "U8", shape = {3}, data = "\0\1\255"},
}, {{"role", "teacher"}, {"step", "100"}})
local hlen = string.unpack("<I8", base)
local header, data = base:sub(9, 8 + hlen), base:sub(9 + hlen)
local function with_header(h, d) return string.pack("<I8", #h) .. h .. (d or data) end

T.test("fuzz: the base file loads identically in both readers", function()
  T.eq(differential(base, "base"), "load")
  local t = skd.load(fuzz_path)
  T.eq(t["bn.num_batches_tracked"]:item(), 12)
  T.eq(t.half:get(1), 1.0)
end)

local counts = {error = 0, load = 0}
local function run(kind_name, cases)
  local c = {error = 0, load = 0}
  for _, case in ipairs(cases) do
    local r = differential(case[1], kind_name .. " " .. case[2])
    c[r] = c[r] + 1
    counts[r] = counts[r] + 1
  end
  print(string.format("      %-28s %5d cases: %4d errors, %4d loads", kind_name, #cases, c.error, c.load))
  return c
end

T.test("fuzz: truncation at every length is an error", function()
  local cases = {}
  for n = 0, #base - 1 do cases[#cases + 1] = {base:sub(1, n), "truncated to " .. n} end
  local c = run("truncation", cases)
  T.eq(c.load, 0, "a truncated file loaded")
end)

T.test("fuzz: every bit of the length field, the header and the data flipped", function()
  local cases = {}
  for i = 1, #base do
    for bit = 0, 7 do
      local b = base:byte(i) ~ (1 << bit)
      cases[#cases + 1] = {base:sub(1, i - 1) .. string.char(b) .. base:sub(i + 1),
                           string.format("byte %d bit %d", i, bit)}
    end
  end
  run("single bit flips", cases)
end)

T.test("fuzz: header bytes replaced with JSON punctuation and digits", function()
  local alphabet = '{}[]:,"\\ -+.eE019aFIU\0\255'
  local cases = {}
  for i = 1, #header do
    for k = 1, #alphabet do
      local ch = alphabet:sub(k, k)
      if header:sub(i, i) ~= ch then
        cases[#cases + 1] = {with_header(header:sub(1, i - 1) .. ch .. header:sub(i + 1)),
                             string.format("header byte %d := %q", i, ch)}
      end
    end
  end
  run("header byte replacements", cases)
end)

-- A deterministic generator (PCG-style LCG on Lua's wrapping 64-bit integers).
local state = 0x853c49e6748fea9b
local function rnd(n)
  state = state * 6364136223846793005 + 1442695040888963407
  return ((state >> 33) % n) + 1
end

T.test("fuzz: random insertions, deletions, splices and byte storms", function()
  local cases = {}
  for k = 1, 1500 do
    local kind, h, content = rnd(6), header, nil
    if kind == 1 then      -- insert a byte into the header, length updated
      local i = rnd(#h + 1)
      h = h:sub(1, i - 1) .. string.char(rnd(256) - 1) .. h:sub(i)
    elseif kind == 2 then  -- delete a run of header bytes
      local i = rnd(#h)
      h = h:sub(1, i - 1) .. h:sub(i + rnd(8))
    elseif kind == 3 then  -- splice: copy a piece of the header elsewhere
      local a, len, at = rnd(#h), rnd(40), rnd(#h)
      h = h:sub(1, at - 1) .. h:sub(a, a + len - 1) .. h:sub(at)
    elseif kind == 4 then  -- storm: several random bytes anywhere in the file
      content = base
      for _ = 1, rnd(6) do
        local i = rnd(#content)
        content = content:sub(1, i - 1) .. string.char(rnd(256) - 1) .. content:sub(i + 1)
      end
    elseif kind == 5 then  -- the length field off by a little
      local delta = rnd(33) - 17
      content = string.pack("<i8", hlen + delta) .. base:sub(9)
    else                   -- trailing or missing data bytes
      local d = rnd(2) == 1 and data .. ("\0"):rep(rnd(9)) or data:sub(1, #data - rnd(9))
      content = with_header(h, d)
    end
    cases[#cases + 1] = {content or with_header(h), "random case " .. k .. " kind " .. kind}
  end
  run("random mutations", cases)
end)

T.test("fuzz: headers rewritten with lies", function()
  -- The base header as fields of raw JSON text, so each lie replaces one piece.
  local model = {
    {'"conv.weight"', '"F32"', "[2, 3]", "[0, 24]"},
    {'"bn.num_batches_tracked"', '"I64"', "[]", "[24, 32]"},
    {'"half"', '"F16"', "[3]", "[32, 38]"},
    {'"label"', '"I32"', "[2]", "[38, 46]"},
    {'"empty"', '"F32"', "[0, 4]", "[46, 46]"},
    {'"bf"', '"BF16"', "[2]", "[46, 50]"},
    {'"mask"', '"U8"', "[3]", "[50, 53]"},
  }
  local function render(m, meta)
    local parts = {meta or '"__metadata__": {"role": "teacher", "step": "100"}'}
    for _, e in ipairs(m) do
      if e.raw then parts[#parts + 1] = e[1] .. ": " .. e.raw
      else
        local f = {}
        if e[2] then f[#f + 1] = '"dtype": ' .. e[2] end
        if e[3] then f[#f + 1] = '"shape": ' .. e[3] end
        if e[4] then f[#f + 1] = '"data_offsets": ' .. e[4] end
        if e.extra then f[#f + 1] = e.extra end
        parts[#parts + 1] = e[1] .. ": {" .. table.concat(f, ", ") .. "}"
      end
    end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  local function variant(i, field, text)
    local m = {}
    for k, e in ipairs(model) do m[k] = {e[1], e[2], e[3], e[4]} end
    if field == "raw" then m[i].raw = text
    elseif field == "extra" then m[i].extra = text
    else m[i][field] = text end
    return m
  end
  T.eq(differential(with_header(render(model)), "rendered model"), "load")
  local numbers = {"-1", "1.5", "1e2", "2.0", "-0", "01", "+1", "0x10", "NaN", "Infinity", "-Infinity",
                   "9223372036854775807", "9223372036854775808", "18446744073709551616", "1e400",
                   "null", "true", '"3"', "[]", "{}", "3", "4294967296"}
  local cases = {}
  local function add(h, d, what) cases[#cases + 1] = {with_header(h, d), what} end
  for i, e in ipairs(model) do
    local b, en = e[4]:match("%[(%d+), (%d+)%]")
    b, en = tonumber(b), tonumber(en)
    for _, x in ipairs(numbers) do
      add(render(variant(i, 3, "[" .. x .. "]")), nil, e[1] .. " shape [" .. x .. "]")
      add(render(variant(i, 3, "[" .. x .. ", 2]")), nil, e[1] .. " shape [x, 2]")
      add(render(variant(i, 4, "[" .. x .. ", " .. en .. "]")), nil, e[1] .. " begin " .. x)
      add(render(variant(i, 4, "[" .. b .. ", " .. x .. "]")), nil, e[1] .. " end " .. x)
    end
    for _, o in ipairs({{en, b}, {b, en + 1}, {b + 1, en + 1}, {b - 1, en - 1}, {0, #data}, {b, b},
                        {b, en + 4}, {b + 4, en + 4}, {b, 1 << 62}, {1 << 62, 1 << 62}}) do
      add(render(variant(i, 4, string.format("[%d, %d]", o[1], o[2]))), nil,
          string.format("%s offsets [%d, %d]", e[1], o[1], o[2]))
    end
    for _, o in ipairs({"[]", "[" .. b .. "]", string.format("[%d, %d, %d]", b, en, en), '"0,4"', "null", "{}"}) do
      add(render(variant(i, 4, o)), nil, e[1] .. " offsets " .. o)
    end
    for _, s in ipairs({"[4294967296, 4294967296]", "[0, 4611686018427387904, 4611686018427387904]",
                        "[2305843009213693952, 4]", "[1, 1, 1, 1, 1, 1, 1, 1, 1]", "[100000, 100000]",
                        "[0]", "[1, 0]", '"2,3"', "{}", "null"}) do
      add(render(variant(i, 3, s)), nil, e[1] .. " shape " .. s)
    end
    for _, d in ipairs({'"F8_E4M3"', '"f32"', '""', "5", "null", '"F32 "', '"C64"', '"I32"', '"F64"', '"U8"'}) do
      add(render(variant(i, 2, d)), nil, e[1] .. " dtype " .. d)
    end
    for f = 2, 4 do add(render(variant(i, f, nil)), nil, e[1] .. " missing field " .. f) end
    add(render(variant(i, "extra", '"extra": 1')), nil, e[1] .. " extra field")
    add(render(variant(i, "extra", '"dtype": "F32"')), nil, e[1] .. " repeated dtype")
    for _, r in ipairs({"[]", "null", '"x"', "1", "{}"}) do add(render(variant(i, "raw", r)), nil, e[1] .. " entry " .. r) end
  end
  -- names
  local dup = {}
  for k, e in ipairs(model) do dup[k] = e end
  dup[#dup + 1] = model[1]
  add(render(dup), nil, "duplicate name")
  for _, n in ipairs({'"__metadata__"', '"a\\u0000"', '"\\udc00"', '"\\ud800x"', '"\xc0\xaf"', '"\xed\xa0\x80"',
                      '"\xf4\x90\x80\x80"', '"ok\\u00e9\\ud83d\\ude00"', '"\\x"', '"tab\there"'}) do
    local m = variant(1, 1, n)
    add(render(m), nil, "name " .. n)
  end
  -- metadata
  for _, md in ipairs({'"__metadata__": {"a": 1}', '"__metadata__": {"a": null}', '"__metadata__": []',
                       '"__metadata__": "x"', '"__metadata__": {"a": "1", "a": "2"}', '"__metadata__": {"a": {}}',
                       '"__metadata__": {}, "__metadata__": {}', '"__metadata__": {"\\u00e9": "\\ud83d\\ude00"}'}) do
    add(render(model, md), nil, "metadata " .. md)
  end
  -- whole headers
  local good = render(model)
  for _, h in ipairs({"", " ", "[]", '"x"', "1", "null", "{", "}", good .. "}", good .. " x", good .. "\0",
                      "\239\187\191" .. good, good:gsub("}$", ",}"), good:gsub(", ", " , ", 3), "{,}",
                      good:gsub('"', "'"), "/* c */" .. good, ("["):rep(3000), ('{"a":'):rep(3000)}) do
    add(h, nil, "header " .. h:sub(1, 40))
  end
  -- the length field lying about a correct header
  for _, delta in ipairs({-1, 1, 8, -8, #data, #data + 1}) do
    cases[#cases + 1] = {string.pack("<i8", #good + delta) .. good .. data, "length " .. delta}
  end
  for _, n in ipairs({0, (100 << 20) + 1, 1 << 62, -1}) do
    cases[#cases + 1] = {string.pack("<i8", n) .. good .. data, "length " .. n}
  end
  local c = run("header lies", cases)
  T.ok(c.error > 0.9 * #cases, "nearly every lie is refused")
end)

T.test("fuzz: total count", function()
  print(string.format("      fuzz total: %d cases, %d clear errors, %d correct loads",
                      counts.error + counts.load, counts.error, counts.load))
  T.ok(counts.error + counts.load > 1000, "hundreds of cases")
end)

-- ---------------------------------------------------------------------------------------------

T.test("a large checkpoint saves and loads quickly", function()
  local n = (os.getenv("SKD_SAN") and 4 or 64) << 20 -- bytes
  local big = {w = skd.rand(n // 4), v = skd.randn(1024, 256)}
  local path = tmp("big.safetensors")
  local t0 = skd.clock()
  skd.save(path, big)
  local t1 = skd.clock()
  local got = skd.load(path)
  local t2 = skd.clock()
  T.eq(bytes(got.w), bytes(big.w))
  T.eq(bytes(got.v), bytes(big.v))
  print(string.format("      %d MB: save %.3f s, load %.3f s", (n + 1024 * 1024) >> 20, t1 - t0, t2 - t1))
  T.ok(t2 - t1 < 10, "load under 10 s")
  os.remove(path)
end)

os.execute("rm -rf '" .. dir .. "'")
os.remove(fuzz_path)
T.done()
