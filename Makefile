# gallop: build, run and test. `make` builds build/gallop; `make test` runs every suite.
PYTHON      ?= /usr/bin/python3
CC          ?= cc
BUILD       ?= build
FUZZ_SECONDS ?= 20

PY_CFLAGS   := $(shell $(PYTHON) -c 'import sysconfig as s; print("-I" + s.get_paths()["include"])' 2>/dev/null)
PY_EXE      := $(shell $(PYTHON) -c 'import sys; print(sys.executable)' 2>/dev/null)
PY_VERSION  := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
# --preload only: the master dlopens libpython (by its soname) before the bridge
PY_LIBPYTHON := $(shell $(PYTHON) -c 'import sysconfig as s; print(s.get_config_var("INSTSONAME"))' 2>/dev/null)
# what the master binary knows of the Python it was built for
PY_DEFS     := -DGP_PYTHON='"$(PY_EXE)"' -DGP_PY_VERSION='"$(PY_VERSION)"' -DGP_LIBPYTHON='"$(PY_LIBPYTHON)"'

WARN        := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wstrict-prototypes -Wmissing-prototypes
CFLAGS      ?= -O2 -g
CFLAGS      += -std=gnu11 -D_GNU_SOURCE -fno-strict-aliasing $(WARN) -Isrc -MMD -MP
SAN_FLAGS   := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -MMD -MP

CORE_SRC    := $(wildcard src/core/*.c)
PY_SRC      := $(wildcard src/py/*.c)
CORE_OBJ    := $(CORE_SRC:%.c=$(BUILD)/%.o)
CORE_PIC    := $(CORE_SRC:%.c=$(BUILD)/pic/%.o)
PY_OBJ      := $(PY_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC    := $(wildcard tests/unit/test_*.c)
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/unit/%)
ASAN_CORE   := $(CORE_SRC:%.c=$(BUILD)/asan/%.o)
ASAN_UNIT   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/asan/unit/%)
FUZZ_SRC    := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN    := $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%)
# libraries the core links: HTTP/2 (nghttp2), TLS (OpenSSL)
CORE_LIBS   := -lnghttp2 -lssl -lcrypto

# What building and running need (make run), then the test toolchain (make test)
DEB_RUN     := gcc make python3-dev libnghttp2-dev libssl-dev
DEB_TOOLS   := libcmocka-dev clang libclang-rt-14-dev openssl
DEB_TEST    := python3-pytest python3-requests python3-flask python3-django curl python3-httpx \
               python3-websockets python3-starlette python3-fastapi python3-uvloop python3-anyio python3-venv systemd \
               nginx-light haproxy gunicorn python3-yaml python3-pip python3-setuptools python3-wheel git iproute2 prometheus nghttp2-client
DEB_BENCH   := wrk gunicorn uwsgi uwsgi-plugin-python3 nginx-light python3-uvicorn python3-httptools python3-uvloop python3-hypercorn valgrind strace

.PHONY: all deps deps-run deps-bench run test check-api check-cycles unit asan-unit asan-pytest pytest fuzz fuzz-long bench format clean

all: $(BUILD)/gallop $(BUILD)/gallop-python.so $(BUILD)/gallop-tls.so

# The master binary has no libpython. Workers execute the interpreter, which
# imports the bridge as an extension module: the bridge carries its own copy
# of the core (-fPIC) and takes Python's symbols from the interpreter, so it
# is not linked to libpython. With --preload the master dlopens libpython and
# the bridge; -rdynamic then binds the bridge's calls into the modules the
# binary has to the binary's (one scoreboard, one log), and the bridge keeps
# its own copy of the rest. The binary takes from the archive only what the
# master uses, so it maps neither OpenSSL nor nghttp2: the master loads
# core/tls from gallop-tls.so when a listener speaks TLS (core/tlsconf.h).
$(BUILD)/gallop: $(BUILD)/src/main.o $(BUILD)/libgpcore.a
	$(CC) $(CFLAGS) -rdynamic -o $@ $< $(BUILD)/libgpcore.a

$(BUILD)/gallop-tls.so: $(BUILD)/pic/src/core/tls.o
	$(CC) $(CFLAGS) -shared -o $@ $^ -lssl -lcrypto

$(BUILD)/gallop-python.so: $(PY_OBJ) $(CORE_PIC)
	$(CC) $(CFLAGS) -shared -o $@ $^ -lpthread $(CORE_LIBS)

$(BUILD)/libgpcore.a: $(CORE_OBJ)
	ar rcs $@ $^

$(BUILD)/src/core/%.o: src/core/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/pic/src/core/%.o: src/core/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -c -o $@ $<

$(BUILD)/src/py/%.o: src/py/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC $(PY_CFLAGS) -DGP_PYTHON='"$(PY_EXE)"' -c -o $@ $<

# conffile runs the Python gallop was built for (a child, to read a .py config)
$(BUILD)/src/core/conffile.o $(BUILD)/pic/src/core/conffile.o $(BUILD)/asan/src/core/conffile.o: CFLAGS += -DGP_PYTHON='"$(PY_EXE)"'
$(BUILD)/asan/src/core/conffile.o: SAN_FLAGS += -DGP_PYTHON='"$(PY_EXE)"'

$(BUILD)/src/main.o: src/main.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PY_DEFS) -c -o $@ $<

# Unit tests: core only, no Python. A test may #include the .c it tests to reach
# its static functions; the archive then supplies only the other modules.
$(BUILD)/unit/%: tests/unit/%.c $(BUILD)/libgpcore.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libgpcore.a -lcmocka $(CORE_LIBS)

# -fPIC: the same objects go into the ASan bridge
$(BUILD)/asan/src/core/%.o: src/core/%.c
	@mkdir -p $(dir $@)
	$(CC) $(SAN_FLAGS) -fPIC -std=gnu11 -D_GNU_SOURCE $(WARN) -Isrc -c -o $@ $<

$(BUILD)/asan/libgpcore.a: $(ASAN_CORE)
	ar rcs $@ $^

$(BUILD)/asan/unit/%: tests/unit/%.c $(BUILD)/asan/libgpcore.a
	@mkdir -p $(dir $@)
	$(CC) $(SAN_FLAGS) -std=gnu11 -D_GNU_SOURCE $(WARN) -Isrc -o $@ $< $(BUILD)/asan/libgpcore.a -lcmocka $(CORE_LIBS)

# gallop itself under ASan/UBSan, for the pytest smoke run in `make test`. Its
# workers execute the same interpreter with the sanitizer runtime preloaded
# (it must come first), and load the sanitized bridge.
ASAN_PY_OBJ := $(PY_SRC:%.c=$(BUILD)/asan/%.o)
ASAN_RT     := $(realpath $(shell $(CC) -print-file-name=libasan.so))
$(BUILD)/asan/src/main.o: src/main.c
	@mkdir -p $(dir $@)
	$(CC) $(SAN_FLAGS) -std=gnu11 -D_GNU_SOURCE $(WARN) -Isrc $(PY_DEFS) -DGP_WORKER_PRELOAD='"$(ASAN_RT)"' -c -o $@ $<

$(BUILD)/asan/src/py/%.o: src/py/%.c
	@mkdir -p $(dir $@)
	$(CC) $(SAN_FLAGS) -fPIC -std=gnu11 -D_GNU_SOURCE $(WARN) -Isrc $(PY_CFLAGS) -DGP_PYTHON='"$(PY_EXE)"' -c -o $@ $<

$(BUILD)/asan/gallop: $(BUILD)/asan/src/main.o $(BUILD)/asan/libgpcore.a
	$(CC) $(SAN_FLAGS) -rdynamic -o $@ $< $(BUILD)/asan/libgpcore.a

$(BUILD)/asan/gallop-tls.so: $(BUILD)/asan/src/core/tls.o
	$(CC) $(SAN_FLAGS) -shared -o $@ $^ -lssl -lcrypto

$(BUILD)/asan/gallop-python.so: $(ASAN_PY_OBJ) $(ASAN_CORE)
	$(CC) $(SAN_FLAGS) -shared -o $@ $^ -lpthread $(CORE_LIBS)

# The core is compiled once for all fuzzers (instrumented, without libFuzzer's
# main); each driver links what it needs of it from the archive.
FUZZ_CFLAGS := -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -std=gnu11 -D_GNU_SOURCE -Isrc
FUZZ_CORE   := $(CORE_SRC:%.c=$(BUILD)/fuzzobj/%.o)
$(BUILD)/fuzzobj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(BUILD)/fuzzobj/libgpcore.a: $(FUZZ_CORE)
	ar rcs $@ $^

$(BUILD)/fuzz/%: fuzz/%.c $(BUILD)/fuzzobj/libgpcore.a
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/fuzzobj/libgpcore.a $(CORE_LIBS)

# Installs the Debian packages of the list $(1) that are missing.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null || \
	  { echo "could not install:$$missing (run as root, or install them yourself)"; exit 1; }; fi
endef

deps-run:
	$(call apt_install,$(DEB_RUN))

deps:
	$(call apt_install,$(DEB_RUN) $(DEB_TOOLS) $(DEB_TEST))

deps-bench:
	$(call apt_install,$(DEB_BENCH))

run: deps-run all
	$(BUILD)/gallop --chdir examples --workers 2 --access-log - app:app

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

asan-unit: $(ASAN_UNIT)
	@set -e; for t in $(ASAN_UNIT); do echo "== $$t (ASan/UBSan)"; $$t; done

fuzz: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_BIN); do n=$$(basename $$f); mkdir -p $(BUILD)/fuzz/corpus-$$n; \
	  echo "== $$n for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 $(BUILD)/fuzz/corpus-$$n fuzz/corpus/$${n#fuzz_} 2>&1 | tail -n 3; done

fuzz-long:
	$(MAKE) fuzz FUZZ_SECONDS=600

pytest: all
	GALLOP_BIN=$(abspath $(BUILD)/gallop) $(PYTHON) -m pytest -q tests/py

# The protocol tests again, against gallop built with ASan/UBSan.
ASAN_PYTEST ?= tests/py/test_http.py tests/py/test_bodies.py tests/py/test_parser_rejects.py tests/py/test_wsgi.py tests/py/test_wsgi_misbehave.py tests/py/test_bridge.py tests/py/test_asgi_http.py tests/py/test_asgi_ws.py tests/py/test_accept.py tests/py/test_asgi_apps.py tests/py/test_static.py tests/py/test_conffile.py tests/py/test_proxy.py tests/py/test_cli_compat.py tests/py/test_interp.py tests/py/test_accesslog.py tests/py/test_tune.py::test_bad_input_is_one_line_and_exit_2 tests/py/test_tune.py::test_post_body_and_paths tests/py/test_h2.py tests/py/test_tls.py tests/py/test_user_scenarios.py::test_asgi_download_cut_off_by_the_client_keeps_the_worker
# detect_odr_violation=0: with --preload the master loads the bridge, which
# carries its own copy of the core for the workers that exec the interpreter;
# the binary's definitions win (-rdynamic), as intended, so the copy's
# globals are registered twice without being used twice.
asan-pytest: $(BUILD)/asan/gallop $(BUILD)/asan/gallop-python.so $(BUILD)/asan/gallop-tls.so
	GALLOP_BIN=$(abspath $(BUILD)/asan/gallop) ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:quarantine_size_mb=8:detect_odr_violation=0 \
	  UBSAN_OPTIONS=print_stacktrace=1 $(PYTHON) -m pytest -q -p no:cacheprovider $(ASAN_PYTEST)

# The bridge uses public CPython API only, so it builds on 3.12 and 3.13 too:
# no underscore-prefixed Py symbol (they change or vanish between versions).
# The files that own gp_conn's struct (conn_h1.h); tests/unit may include it too.
CONN_H1_OWNERS := conn.c conn_body.c h1.c h1_log.c h1_thread.c
check-api:
	@if grep -nE '(^|[^A-Za-z0-9])_Py[A-Za-z0-9_]' src/py/*.[ch]; then \
	  echo "check-api: private CPython API in src/py (above): use the public API"; exit 1; fi
	@echo "check-api: src/py uses public CPython API only"
	@bad=$$(grep -lE '^#include "core/conn_h1\.h"' src/*.c src/core/*.[ch] src/py/*.[ch] fuzz/*.c \
	  | grep -vxF $(foreach f,$(CONN_H1_OWNERS),-e src/core/$(f)) -e src/core/conn_h1.h); \
	  if [ -n "$$bad" ]; then echo "check-api: $$bad: conn_h1.h is private to $(CONN_H1_OWNERS) (use h1.h, conn.h)"; exit 1; fi
	@bad=$$(grep -lE '^struct gp_worker \{' src/*.c src/core/*.[ch] src/py/*.[ch] fuzz/*.c \
	  | grep -vx 'src/core/worker\.c'); \
	  if [ -n "$$bad" ]; then echo "check-api: $$bad: gp_worker is private to worker.c (use worker_env.h)"; exit 1; fi
	@bad=$$(grep -lE '^struct gp_conns? \{' src/*.c src/core/*.[ch] src/py/*.[ch] fuzz/*.c \
	  | grep -vx 'src/core/conn_h1\.h'); \
	  if [ -n "$$bad" ]; then echo "check-api: $$bad: gp_conn is defined in conn_h1.h only"; exit 1; fi
	@echo "check-api: gp_conn's struct in $(CONN_H1_OWNERS) only, gp_worker's in worker.c only"

# No two modules of the core call each other in a circle (docs/architecture.md):
# the call graph between the objects, from what each defines and uses (nm).
check-cycles: $(CORE_OBJ)
	$(PYTHON) tools/callgraph.py $(CORE_OBJ)

test: deps
	$(MAKE) -j$(shell nproc) all $(UNIT_BIN) $(ASAN_UNIT) $(FUZZ_BIN) $(BUILD)/asan/gallop $(BUILD)/asan/gallop-python.so $(BUILD)/asan/gallop-tls.so
	$(MAKE) check-api check-cycles all unit asan-unit fuzz asan-pytest
	$(MAKE) pytest

bench: deps deps-bench all
	$(PYTHON) bench/compare.py

format:
	clang-format -i src/*.c src/core/*.[ch] src/py/*.[ch] tests/unit/*.c fuzz/*.c

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
