/* skd_lua.c — the skd-lua program: Lua 5.4's stand-alone interpreter with the skd module
 * preloaded (global `skd`, and `require "skd"`), plus a REPL for poking at tensors:
 * readline editing, persistent history (~/.skd_history or $SKD_HISTORY), tab completion of
 * dotted names and of methods after ':', expression results printed, errors shown with a
 * traceback without ending the session, Ctrl-C stopping a running chunk (design.md, "lua/").
 * Options and the `arg` table follow lua(1), so scripts move between the two unchanged. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>
#include <readline/readline.h>
#include <readline/history.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "lskd.h"

#define PROMPT "> "
#define PROMPT2 ">> "
#define HISTORY_LINES 1000
#define EOF_MARK "<eof>" /* the tail of a syntax error that only wants more input */

static const char *progname = "skd-lua";
static lua_State *running_L; /* the state a Ctrl-C should stop, and completion reads */

/* ---------- messages ---------- */

static void print_usage(FILE *f)
{
	fprintf(f,
		"usage: %s [options] [script [args]]\n"
		"  -e chunk  run the string 'chunk' (may be repeated)\n"
		"  -l name   require library 'name' into global 'name'\n"
		"  -i        enter the interactive REPL after running 'script'\n"
		"  -v        show the skd and Lua versions\n"
		"  -h, --help  show this help\n"
		"  --        stop handling options\n"
		"  -         stop handling options and run the standard input\n"
		"With no script and a terminal on stdin, starts the REPL; with stdin not a terminal,\n"
		"runs it as a script. The script's arguments are in the global 'arg' and in '...'.\n",
		progname);
}

static void print_version(void)
{
	printf("skd %s with %s\n", SKD_VERSION, LUA_COPYRIGHT);
	fflush(stdout);
}

/* Prints the error on top of the stack (a string: msghandler made it one) and pops it. */
static int report(lua_State *L, int status)
{
	if (status != LUA_OK) {
		const char *msg = lua_tostring(L, -1);
		if (progname)
			fprintf(stderr, "%s: ", progname);
		fprintf(stderr, "%s\n", msg ? msg : "(error object is not a string)");
		fflush(stderr);
		lua_pop(L, 1);
	}
	return status;
}

/* Message handler for every chunk: the error as a string, with a traceback. */
static int msghandler(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);
	if (!msg) {
		if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
			return 1; /* an object that prints itself: no traceback added */
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	}
	luaL_traceback(L, L, msg, 1);
	return 1;
}

/* ---------- Ctrl-C while Lua runs ----------
 * A signal handler may not touch the Lua state, except to set a hook (lua_sethook is safe to
 * call asynchronously); the hook then raises the error from inside the interpreter. A second
 * Ctrl-C before the hook runs (a long C kernel) kills the process, as in lua(1). */

static void stop_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	lua_sethook(L, NULL, 0, 0);
	luaL_error(L, "interrupted!");
}

static void on_sigint_running(int sig)
{
	(void)sig;
	lua_sethook(running_L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* lua_pcall with the traceback handler and Ctrl-C armed. */
static int docall(lua_State *L, int narg, int nres)
{
	int base = lua_gettop(L) - narg;
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigint_running;
	sa.sa_flags = (int)SA_RESETHAND; /* the second Ctrl-C takes the default action */
	sigemptyset(&sa.sa_mask);
	lua_pushcfunction(L, msghandler);
	lua_insert(L, base);
	running_L = L;
	sigaction(SIGINT, &sa, &old);
	int status = lua_pcall(L, narg, nres, base);
	sigaction(SIGINT, &old, NULL);
	if (lua_gethook(L) == stop_hook) /* Ctrl-C came after the chunk ended */
		lua_sethook(L, NULL, 0, 0);
	lua_remove(L, base);
	return status;
}

static int dochunk(lua_State *L, int status)
{
	if (status == LUA_OK)
		status = docall(L, 0, 0);
	return report(L, status);
}

static int dolibrary(lua_State *L, const char *name)
{
	lua_getglobal(L, "require");
	lua_pushstring(L, name);
	int status = docall(L, 1, 1);
	if (status == LUA_OK)
		lua_setglobal(L, name);
	return report(L, status);
}

/* ---------- the command line ---------- */

/* arg[0] is the script, its arguments at 1.., the interpreter and options at negative
 * indices; with no script, arg[0] is the interpreter (as lua(1) builds it). */
static void create_arg_table(lua_State *L, char **argv, int argc, int script)
{
	if (script == argc)
		script = 0;
	lua_createtable(L, argc - script - 1, script + 1);
	for (int i = 0; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i - script);
	}
	lua_setglobal(L, "arg");
}

enum { OPT_I = 1, OPT_V = 2, OPT_E = 4, OPT_HELP = 8 };

/* Scans the options; returns the flags, or -1 with *first at the bad option. *first is the
 * script's index (argc when there is none). */
static int collect_options(int argc, char **argv, int *first)
{
	int flags = 0;
	int i;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		*first = i;
		if (a[0] != '-')
			return flags;
		if (!strcmp(a, "--help") || !strcmp(a, "-h"))
			return flags | OPT_HELP;
		if (!strcmp(a, "--")) {
			*first = i + 1;
			return flags;
		}
		if (!strcmp(a, "-"))
			return flags; /* the script is stdin */
		switch (a[1]) {
		case 'i':
		case 'v':
			if (a[2] != '\0')
				return -1;
			flags |= a[1] == 'i' ? OPT_I : OPT_V;
			break;
		case 'e':
		case 'l':
			if (a[1] == 'e')
				flags |= OPT_E;
			if (a[2] == '\0' && (i + 1 >= argc || argv[i + 1][0] == '-'))
				return -1; /* needs an argument */
			if (a[2] == '\0')
				i++;
			break;
		default:
			return -1;
		}
	}
	*first = i;
	return flags;
}

/* Runs the -e and -l options in order; 0 when one failed. */
static int run_options(lua_State *L, char **argv, int script)
{
	for (int i = 1; i < script; i++) {
		char opt = argv[i][1];
		if (argv[i][0] != '-' || (opt != 'e' && opt != 'l'))
			continue;
		const char *val = argv[i][2] ? argv[i] + 2 : argv[++i];
		int status = opt == 'e'
			? dochunk(L, luaL_loadbuffer(L, val, strlen(val), "=(command line)"))
			: dolibrary(L, val);
		if (status != LUA_OK)
			return 0;
	}
	return 1;
}

static int run_script(lua_State *L, char **argv, int script)
{
	const char *fname = argv[script];
	if (!strcmp(fname, "-") && strcmp(argv[script - 1], "--") != 0)
		fname = NULL; /* stdin */
	int status = luaL_loadfile(L, fname);
	if (status == LUA_OK) {
		lua_getglobal(L, "arg");
		int n = (int)luaL_len(L, -1);
		luaL_checkstack(L, n + 3, "too many arguments to script");
		for (int i = 1; i <= n; i++)
			lua_rawgeti(L, -i, i);
		lua_remove(L, -n - 1); /* the arg table */
		status = docall(L, n, 0);
	}
	return report(L, status);
}

/* ---------- reading lines ---------- */

enum { READ_LINE, READ_EOF, READ_INTERRUPT };

static volatile sig_atomic_t prompt_interrupted;
static char *rl_line;
static int rl_have_line;

static void on_sigint_prompt(int sig)
{
	(void)sig;
	prompt_interrupted = 1;
}

static void on_rl_line(char *line)
{
	rl_line = line;
	rl_have_line = 1;
	rl_callback_handler_remove();
}

/* readline through its callback interface, so that Ctrl-C can abandon the line: the signal
 * only sets a flag, pselect returns, and readline is cleaned up as after a signal. */
static int read_tty(const char *prompt, char **line)
{
	int fd = fileno(rl_instream ? rl_instream : stdin);
	struct sigaction sa, old;
	sigset_t block, waitmask;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigint_prompt; /* no SA_RESTART: pselect must return */
	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &waitmask); /* SIGINT lands only inside pselect */
	sigdelset(&waitmask, SIGINT);
	sigaction(SIGINT, &sa, &old);
	prompt_interrupted = 0;
	rl_have_line = 0;
	rl_line = NULL;
	rl_callback_handler_install(prompt, on_rl_line);
	int result = READ_LINE;
	while (!rl_have_line) {
		fd_set fds;
		FD_ZERO(&fds);
		FD_SET(fd, &fds);
		int r = pselect(fd + 1, &fds, NULL, NULL, NULL, &waitmask);
		if (prompt_interrupted) {
			rl_free_line_state();
			rl_callback_sigcleanup();
			rl_cleanup_after_signal();
			rl_callback_handler_remove();
			fputs("^C\n", rl_outstream ? rl_outstream : stdout);
			result = READ_INTERRUPT;
			break;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rl_callback_handler_remove();
			result = READ_EOF;
			break;
		}
		rl_callback_read_char();
	}
	sigaction(SIGINT, &old, NULL);
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	if (result == READ_LINE && !rl_line)
		result = READ_EOF;
	*line = result == READ_LINE ? rl_line : NULL;
	return result;
}

/* stdin not a terminal (`skd-lua -i < file`): prompts, but no editing or history. */
static int read_plain(const char *prompt, char **line)
{
	size_t cap = 0;
	*line = NULL;
	fputs(prompt, stdout);
	fflush(stdout);
	ssize_t n = getline(line, &cap, stdin);
	if (n < 0) {
		free(*line);
		*line = NULL;
		return READ_EOF;
	}
	if (n > 0 && (*line)[n - 1] == '\n')
		(*line)[n - 1] = '\0';
	return READ_LINE;
}

static int use_readline;

static int read_line(int first, char **line)
{
	fflush(stdout);
	const char *prompt = first ? PROMPT : PROMPT2;
	return use_readline ? read_tty(prompt, line) : read_plain(prompt, line);
}

/* ---------- history ---------- */

static char history_path[4096];
static int history_to_file;

static void history_open(void)
{
	const char *env = getenv("SKD_HISTORY");
	const char *home = getenv("HOME");
	stifle_history(HISTORY_LINES);
	if (env && *env)
		snprintf(history_path, sizeof history_path, "%s", env);
	else if (home && *home)
		snprintf(history_path, sizeof history_path, "%s/.skd_history", home);
	else
		return;
	if (access(history_path, F_OK) == 0)
		read_history(history_path);
	else if (write_history(history_path) != 0)
		return; /* cannot create it: history stays in memory */
	history_to_file = access(history_path, W_OK) == 0;
}

static void history_add(const char *chunk)
{
	if (!use_readline || chunk[0] == '\0')
		return;
	HIST_ENTRY *last = history_length > 0 ? history_get(history_base + history_length - 1) : NULL;
	if (last && !strcmp(last->line, chunk))
		return;
	add_history(chunk);
	if (history_to_file)
		append_history(1, history_path); /* now, so a crash or os.exit loses nothing */
}

static void history_close(void)
{
	if (history_to_file)
		history_truncate_file(history_path, HISTORY_LINES);
}

/* ---------- completion ----------
 * The word under the cursor is a dotted path (`skd.nn.Con`, `x:su`). Its head is looked up
 * from the globals with raw gets only, so completing never runs user code or loads a lazy
 * module (skd.nn completes once it has been used); the candidates are the string keys of the
 * value found, of the tables its metatables' __index lead to, and for userdata of the
 * metatable's `methods` table, where tensors keep theirs. After ':' only callables count. */

static const char *const lua_keywords[] = {
	"and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
	"in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
	NULL,
};

static int is_identifier(const char *s, size_t n)
{
	if (n == 0 || !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

/* Pushes the raw field `field` of the metatable of the value at idx (nil if none). */
static int push_meta_field(lua_State *L, int idx, const char *field)
{
	if (!lua_getmetatable(L, idx)) {
		lua_pushnil(L);
		return LUA_TNIL;
	}
	lua_pushstring(L, field);
	int type = lua_rawget(L, -2);
	lua_remove(L, -2);
	return type;
}

/* Replaces the value on top by value[key], raw, following __index tables; nil if absent. */
static void raw_lookup(lua_State *L, const char *key, size_t klen)
{
	for (int depth = 0; depth < 16 && lua_istable(L, -1); depth++) {
		lua_pushlstring(L, key, klen);
		if (lua_rawget(L, -2) != LUA_TNIL) {
			lua_remove(L, -2);
			return;
		}
		lua_pop(L, 1);
		push_meta_field(L, -1, "__index");
		lua_remove(L, -2);
	}
	lua_pop(L, 1);
	lua_pushnil(L);
}

static int is_callable(lua_State *L, int idx)
{
	if (lua_isfunction(L, idx))
		return 1;
	int callable = push_meta_field(L, idx, "__call") != LUA_TNIL;
	lua_pop(L, 1);
	return callable;
}

typedef struct completion {
	const char *prefix; /* the text up to and including the last separator */
	size_t plen;
	const char *word;   /* what follows it */
	size_t wlen;
	int callables_only;
	int set;            /* stack index of the table collecting candidates as keys */
} completion;

static void add_keys(lua_State *L, int obj, const completion *c, int depth)
{
	obj = lua_absindex(L, obj);
	if (depth > 8)
		return;
	if (lua_istable(L, obj)) {
		lua_pushnil(L);
		while (lua_next(L, obj)) {
			size_t klen;
			const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &klen) : NULL;
			if (k && klen >= c->wlen && !memcmp(k, c->word, c->wlen) && is_identifier(k, klen) &&
			    (k[0] != '_' || c->wlen > 0) && (!c->callables_only || is_callable(L, -1))) {
				lua_pushlstring(L, c->prefix, c->plen);
				lua_pushvalue(L, -3);
				lua_concat(L, 2);
				lua_pushboolean(L, 1);
				lua_rawset(L, c->set);
			}
			lua_pop(L, 1);
		}
	}
	if (!lua_istable(L, obj)) {
		if (push_meta_field(L, obj, "methods") == LUA_TTABLE)
			add_keys(L, -1, c, depth + 1);
		lua_pop(L, 1);
	}
	if (push_meta_field(L, obj, "__index") == LUA_TTABLE)
		add_keys(L, -1, c, depth + 1);
	lua_pop(L, 1);
}

/* completions(text) -> {candidate = true, ...}; run under lua_pcall, so that nothing a
 * completion does (running out of memory) can escape into readline. */
static int l_completions(lua_State *L)
{
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);
	const char *sep = NULL;
	for (const char *p = text; *p; p++)
		if (*p == '.' || *p == ':')
			sep = p;
	lua_newtable(L);
	completion c = {text, 0, text, len, 0, lua_gettop(L)};
	lua_pushglobaltable(L);
	if (!sep) {
		add_keys(L, -1, &c, 0);
		for (int i = 0; lua_keywords[i]; i++)
			if (!strncmp(lua_keywords[i], text, len)) {
				lua_pushboolean(L, 1);
				lua_setfield(L, c.set, lua_keywords[i]);
			}
		lua_pop(L, 1);
		return 1;
	}
	for (const char *p = text; p < sep;) { /* walk the head: globals.a.b... */
		const char *q = p;
		while (q < sep && *q != '.')
			q++;
		if (!is_identifier(p, (size_t)(q - p))) {
			lua_pop(L, 1);
			return 1;
		}
		raw_lookup(L, p, (size_t)(q - p));
		p = q + 1;
	}
	c.plen = (size_t)(sep - text) + 1;
	c.word = sep + 1;
	c.wlen = len - c.plen;
	c.callables_only = *sep == ':';
	add_keys(L, -1, &c, 0);
	lua_pop(L, 1);
	return 1;
}

static char **candidates;
static int n_candidates, next_candidate;

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* readline takes each returned string over. */
static char *candidate_generator(const char *text, int state)
{
	(void)text;
	if (state == 0)
		next_candidate = 0;
	return next_candidate < n_candidates ? candidates[next_candidate++] : NULL;
}

static char **complete(const char *text, int start, int end)
{
	(void)start;
	(void)end;
	lua_State *L = running_L;
	rl_attempted_completion_over = 1; /* never fall back to file names */
	rl_completion_append_character = '\0';
	int top = lua_gettop(L);
	lua_pushcfunction(L, l_completions);
	lua_pushstring(L, text);
	if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
		lua_settop(L, top);
		return NULL;
	}
	int n = 0;
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		n++;
		lua_pop(L, 1);
	}
	candidates = malloc(((size_t)n + 1) * sizeof *candidates);
	n_candidates = 0;
	if (candidates) {
		lua_pushnil(L);
		while (lua_next(L, -2)) {
			char *s = strdup(lua_tostring(L, -2));
			if (s)
				candidates[n_candidates++] = s;
			lua_pop(L, 1);
		}
		qsort(candidates, (size_t)n_candidates, sizeof *candidates, compare_strings);
	}
	lua_settop(L, top);
	char **matches = n_candidates ? rl_completion_matches(text, candidate_generator) : NULL;
	for (int i = next_candidate; i < n_candidates; i++) /* any readline did not take */
		free(candidates[i]);
	free(candidates);
	candidates = NULL;
	n_candidates = next_candidate = 0;
	return matches;
}

/* ---------- the REPL ---------- */

enum { CHUNK_EOF = -1, CHUNK_CANCELLED = -2 };

/* A syntax error that ends at <eof>: the chunk only needs more lines. */
static int incomplete(lua_State *L, int status)
{
	size_t n;
	const char *msg = status == LUA_ERRSYNTAX ? lua_tolstring(L, -1, &n) : NULL;
	return msg && n >= sizeof EOF_MARK - 1 && !strcmp(msg + n - (sizeof EOF_MARK - 1), EOF_MARK);
}

/* Reads and compiles one chunk: first as `return <line>;` so that an expression prints its
 * values, else as statements, reading continuation lines while the parser stops at <eof>.
 * Leaves the function (or the error message) alone on the stack and returns the load
 * status; CHUNK_EOF at the end of input, CHUNK_CANCELLED after a Ctrl-C. */
static int load_chunk(lua_State *L)
{
	char *line;
	lua_settop(L, 0);
	int r = read_line(1, &line);
	if (r != READ_LINE)
		return r == READ_EOF ? CHUNK_EOF : CHUNK_CANCELLED;
	if (line[0] == '=') /* Lua 5.1's `=expr` */
		lua_pushfstring(L, "return %s", line + 1);
	else
		lua_pushstring(L, line);
	free(line);
	const char *ret = lua_pushfstring(L, "return %s;", lua_tostring(L, 1));
	int status = luaL_loadbuffer(L, ret, strlen(ret), "=stdin");
	if (status == LUA_OK) {
		lua_remove(L, 2);
		history_add(lua_tostring(L, 1));
		lua_remove(L, 1);
		return LUA_OK;
	}
	lua_settop(L, 1);
	for (;;) {
		size_t len;
		const char *chunk = lua_tolstring(L, 1, &len);
		status = luaL_loadbuffer(L, chunk, len, "=stdin");
		if (!incomplete(L, status))
			break;
		r = read_line(0, &line);
		if (r == READ_INTERRUPT)
			return CHUNK_CANCELLED;
		if (r == READ_EOF)
			break; /* report the <eof> error */
		lua_pop(L, 1);
		lua_pushliteral(L, "\n");
		lua_pushstring(L, line);
		free(line);
		lua_concat(L, 3);
	}
	history_add(lua_tostring(L, 1));
	lua_remove(L, 1);
	return status;
}

/* Prints the chunk's results with the global print (all of them, tab-separated). */
static void print_results(lua_State *L)
{
	int n = lua_gettop(L);
	if (n == 0)
		return;
	luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
	lua_getglobal(L, "print");
	lua_insert(L, 1);
	if (lua_pcall(L, n, 0, 0) != LUA_OK) {
		fprintf(stderr, "error calling 'print' (%s)\n", lua_tostring(L, -1));
		lua_pop(L, 1);
	}
}

static void repl(lua_State *L)
{
	const char *saved = progname;
	progname = NULL; /* interactive errors need no program name */
	running_L = L;
	use_readline = isatty(0);
	if (use_readline) {
		printf("skd %s (%s) — tensors, autograd and distillation. "
		       "Try: x = skd.randn(2,3); print(x)\n", SKD_VERSION, LUA_RELEASE);
		rl_readline_name = "skd";
		rl_catch_signals = 0; /* Ctrl-C is read_tty's */
		rl_attempted_completion_function = complete;
		rl_completer_word_break_characters = " \t\n\"\\'`@$><=;|&{}()[],+-*/%^#~";
		rl_variable_bind("show-all-if-ambiguous", "on"); /* one Tab lists; ~/.inputrc may override */
		history_open();
	}
	int status;
	while ((status = load_chunk(L)) != CHUNK_EOF) {
		if (status == CHUNK_CANCELLED)
			continue;
		if (status == LUA_OK)
			status = docall(L, 0, LUA_MULTRET);
		if (status == LUA_OK)
			print_results(L);
		else
			report(L, status);
	}
	lua_settop(L, 0);
	putchar('\n');
	fflush(stdout);
	if (use_readline)
		history_close();
	progname = saved;
}

/* ---------- main ---------- */

static int pmain(lua_State *L)
{
	int argc = (int)lua_tointeger(L, 1);
	char **argv = lua_touserdata(L, 2);
	int script = argc;
	int flags = collect_options(argc, argv, &script);
	if (flags < 0) {
		const char *bad = argv[script];
		if ((bad[1] == 'e' || bad[1] == 'l') && bad[2] == '\0')
			fprintf(stderr, "%s: '%s' needs an argument\n", progname, bad);
		else
			fprintf(stderr, "%s: unrecognized option '%s'\n", progname, bad);
		print_usage(stderr);
		return 0;
	}
	if (flags & OPT_HELP) {
		print_usage(stdout);
		lua_pushboolean(L, 1);
		return 1;
	}
	if (flags & OPT_V)
		print_version();
	luaL_openlibs(L);
	luaL_requiref(L, "skd", luaopen_skd, 1);
	lua_pop(L, 1);
	create_arg_table(L, argv, argc, script);
	if (!run_options(L, argv, script))
		return 0;
	if (script < argc && run_script(L, argv, script) != LUA_OK)
		return 0;
	if (flags & OPT_I)
		repl(L);
	else if (script == argc && !(flags & (OPT_E | OPT_V))) {
		if (isatty(0))
			repl(L);
		else if (dochunk(L, luaL_loadfile(L, NULL)) != LUA_OK)
			return 0;
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* OpenMP threads that wait by spinning steal the cores from everything else this program
 * runs beside its kernels (the data loader's worker, the viewer's thread) and from other
 * processes: on a busy 2-core machine a convolution ran 36x slower. libgomp reads its wait
 * policy before main, so the program sets OMP_WAIT_POLICY=passive and starts itself again,
 * once; a user's own setting is kept. */
static void prefer_passive_openmp(char **argv)
{
	if (getenv("OMP_WAIT_POLICY") || getenv("SKD_REEXECED"))
		return;
	setenv("OMP_WAIT_POLICY", "passive", 1);
	setenv("SKD_REEXECED", "1", 1);
	execv("/proc/self/exe", argv);
	/* exec failed (no /proc): carry on with the default policy */
}

int main(int argc, char **argv)
{
	prefer_passive_openmp(argv);
	lua_State *L = luaL_newstate();
	if (!L) {
		fprintf(stderr, "%s: cannot create a Lua state (out of memory)\n", progname);
		return EXIT_FAILURE;
	}
	lua_pushcfunction(L, pmain);
	lua_pushinteger(L, argc);
	lua_pushlightuserdata(L, argv);
	int status = lua_pcall(L, 2, 1, 0);
	int ok = lua_toboolean(L, -1);
	report(L, status);
	lua_close(L);
	return ok && status == LUA_OK ? EXIT_SUCCESS : EXIT_FAILURE;
}
