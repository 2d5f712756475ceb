# skd — build, test, benchmark.
#   make            the core library, the skd Lua module and the skd-lua program
#   make run        builds, then runs the main job (experiments/ablation.lua)
#   make test       builds, then runs every test (closing line: N passed, M failed)
#   make test SAN=1 the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      benchmarks (figures as ratios; not tests)
#   make clean
# Missing Debian packages are installed by scripts/install-deps.sh when pkg-config
# cannot find a dependency.

CC      ?= cc
SAN     ?= 0
BUILD   := build$(if $(filter 1,$(SAN)),-san,)

BLIS_INC := /usr/include/x86_64-linux-gnu/blis-openmp
BLIS_LIB := /usr/lib/x86_64-linux-gnu/blis-openmp

DEPS_OK := $(shell pkg-config --exists lua5.4 sdl2 SDL2_ttf libpng readline 2>/dev/null && test -f $(BLIS_INC)/blis.h && echo yes)
ifneq ($(DEPS_OK),yes)
  $(info skd: dependencies missing; running scripts/install-deps.sh)
  $(shell bash scripts/install-deps.sh >&2)
endif

WARN    := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wno-unused-parameter
# -fvect-cost-model=dynamic: GCC 12's -O2 vectorises only loops that need no runtime checks,
# which left every element-wise, BatchNorm and pooling loop (OpenMP-outlined, unknown trip
# counts) scalar. Vectorising them changes no result: no floating-point sum is reordered.
OPT     := -O2 -fvect-cost-model=dynamic -march=x86-64-v3 -mtune=znver3 -fno-math-errno
CFLAGS  += -std=gnu11 $(OPT) -g $(WARN) -fopenmp -fPIC -MMD -MP
CPPFLAGS += -Icore -Ilua -Iviewer -isystem $(BLIS_INC) $(shell pkg-config --cflags lua5.4 sdl2 SDL2_ttf libpng 2>/dev/null)
LDLIBS  += -L$(BLIS_LIB) -Wl,-rpath,$(BLIS_LIB) -lblis -fopenmp -lmvec -lm -lpthread
ifeq ($(SAN),1)
  CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -DSKD_NO_CACHE
  LDFLAGS += -fsanitize=address,undefined
endif

LUA_LIBS := $(shell pkg-config --libs lua5.4 2>/dev/null)
SDL_LIBS := $(shell pkg-config --libs sdl2 SDL2_ttf 2>/dev/null)
PNG_LIBS := $(shell pkg-config --libs libpng 2>/dev/null)
RL_LIBS  := $(shell pkg-config --libs readline 2>/dev/null)

CORE_SRC   := $(wildcard core/*.c)
BIND_SRC   := $(filter-out lua/skd_lua.c,$(wildcard lua/*.c))
VIEWER_SRC := $(wildcard viewer/*.c)
CORE_OBJ   := $(CORE_SRC:%.c=$(BUILD)/%.o)
BIND_OBJ   := $(BIND_SRC:%.c=$(BUILD)/%.o)
VIEWER_OBJ := $(VIEWER_SRC:%.c=$(BUILD)/%.o)
MAIN_OBJ   := $(BUILD)/lua/skd_lua.o

.PHONY: all test bench clean deps run
# The ./skd-lua link always names the plain build; the sanitizer build stays in build-san/.
ifeq ($(SAN),1)
all: $(BUILD)/skd-lua $(BUILD)/skd.so
else
all: skd-lua $(BUILD)/skd.so
endif

deps:
	bash scripts/install-deps.sh

$(BUILD)/libskdcore.a: $(CORE_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

# Objects depend on this file too: a change of flags rebuilds them.
$(BUILD)/%.o: %.c Makefile
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# The program: Lua, the binding, the viewer and the core in one binary.
$(BUILD)/skd-lua: $(MAIN_OBJ) $(BIND_OBJ) $(VIEWER_OBJ) $(BUILD)/libskdcore.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LUA_LIBS) $(SDL_LIBS) $(PNG_LIBS) $(RL_LIBS) $(LDLIBS)

skd-lua: $(BUILD)/skd-lua
	ln -sf $(BUILD)/skd-lua skd-lua

# `require "skd"` from a plain lua5.4 interpreter.
$(BUILD)/skd.so: $(BIND_OBJ) $(VIEWER_OBJ) $(BUILD)/libskdcore.a
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(SDL_LIBS) $(PNG_LIBS) $(LDLIBS)

test: all
	bash tests/run.sh $(if $(filter 1,$(SAN)),--san,)

# The main job: the ablation experiment on the embedded synthetic scenes (ARGS passes flags,
# e.g. make run ARGS=--quick). Until it exists, the REPL.
run: all
	@if [ -f experiments/ablation.lua ]; then ./skd-lua experiments/ablation.lua $(ARGS); else ./skd-lua; fi

# Benchmark programs: bench/bench_*.c, each linked against the core library.
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/bench_*.c))
$(BUILD)/bench/%: bench/%.c $(BUILD)/libskdcore.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(filter-out -MMD -MP,$(CFLAGS)) -o $@ $< $(BUILD)/libskdcore.a $(PNG_LIBS) $(LDLIBS)

bench: all $(BENCH_BIN)
	BUILD=$(BUILD) bash bench/run.sh

clean:
	rm -rf build build-san skd-lua

-include $(CORE_OBJ:.o=.d) $(BIND_OBJ:.o=.d) $(VIEWER_OBJ:.o=.d) $(MAIN_OBJ:.o=.d)
