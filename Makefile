# GoPulse Messages - plain make, pkg-config for every library.
#   make            build/gopulse-messages and build/webhook-receiver
#   make SAN=1      the same with AddressSanitizer + UBSan, under build/san/
#   make test       unit tests, then integration tests against real servers
#   make run        local PostgreSQL, Redis and webhook receiver + the service
#   make bench      benchmarks
#   make fuzz       each libFuzzer target (test/fuzz) for FUZZ_SECONDS (clang; -j2 runs two at once)
#   make soak       fault soak with invariants (scripts/soak.py) for SOAK_SECONDS, SOAK_SEED
#   make docs       README.md's configuration table, from the table in src/config.c
#   make format     clang-format every C file in place (.clang-format)
#   make format-check  fail, listing the files `make format` would change

PKGS    := libevent libpq hiredis libcurl jansson libcrypto
CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes
override CFLAGS += -std=c11 -D_GNU_SOURCE $(WARN) -Iinclude \
                   $(shell pkg-config --cflags $(PKGS))
LDLIBS  := $(shell pkg-config --libs $(PKGS)) -lm
# Debian's python3, where packages.txt puts PyYAML (a pyenv one may lack it).
PYTHON  ?= $(firstword $(wildcard /usr/bin/python3) python3)

ifeq ($(SAN),1)
BUILD   := build/san
override CFLAGS += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
                   -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
else
BUILD   := build
endif

BIN      := $(BUILD)/gopulse-messages
RECEIVER := $(BUILD)/webhook-receiver
SRCS     := $(sort $(wildcard src/*.c))
OBJS     := $(SRCS:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/sql_files.o \
            $(BUILD)/obj/openapi_doc.o
LIBOBJS  := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
UNIT_SRCS := $(sort $(wildcard test/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:test/unit/%.c=$(BUILD)/test/unit_%)
SQL      := $(sort $(wildcard sql/*.sql))
# Every C file clang-format owns; `format` and `format-check` both use it.
FORMAT_SRCS := $(sort $(wildcard src/*.c include/*.h test/receiver.c \
                                 test/unit/*.[ch] test/fuzz/*.[ch]))
CLANG_FORMAT ?= clang-format

.PHONY: all test unit run bench clean format format-check docs docs-deps \
        swagger-ui deps fuzz fuzz-build soak
all: $(BIN) $(RECEIVER)

$(BIN): $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: src/%.c | $(BUILD)/obj
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/obj/sql_files.c: $(SQL) scripts/embed-sql.sh | $(BUILD)/obj
	./scripts/embed-sql.sh $@ $(SQL)

$(BUILD)/obj/sql_files.o: $(BUILD)/obj/sql_files.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/obj/openapi_doc.c: openapi.yaml scripts/embed-openapi.py | $(BUILD)/obj
	$(PYTHON) scripts/embed-openapi.py $@ openapi.yaml

$(BUILD)/obj/openapi_doc.o: $(BUILD)/obj/openapi_doc.c
	$(CC) $(CFLAGS) -c -o $@ $<

# The receiver also speaks https (--tls-port), for the tests of TLS webhooks.
RECEIVER_PKGS := libevent_openssl openssl
$(RECEIVER): test/receiver.c | $(BUILD)/obj
	$(CC) $(CFLAGS) $(shell pkg-config --cflags $(RECEIVER_PKGS)) $(LDFLAGS) \
	    -o $@ $< $(LDLIBS) $(shell pkg-config --libs $(RECEIVER_PKGS))

$(BUILD)/test/unit_%: test/unit/%.c test/unit/harness.h $(LIBOBJS) | $(BUILD)/test
	$(CC) $(CFLAGS) -Itest/unit $(LDFLAGS) -o $@ $< $(LIBOBJS) $(LDLIBS)

$(BUILD)/obj $(BUILD)/test:
	mkdir -p $@

# ---- fuzzing (test/fuzz/README.md)
# One libFuzzer target per parser; POST /messages' body validator joins them
# as `messages_body` once it exists (issue 9).
FUZZ_TARGETS := query config reply router http messages_body
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_DIR     := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
# clang 14 also warns on a partly designated initializer, which gcc and the
# code accept.
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE $(WARN) -Wno-missing-field-initializers \
                -Iinclude -Itest/fuzz -g -O1 \
                -fno-omit-frame-pointer $(FUZZ_SAN) $(shell pkg-config --cflags $(PKGS))
FUZZ_OBJS    := $(filter-out $(FUZZ_DIR)/obj/main.o,$(SRCS:src/%.c=$(FUZZ_DIR)/obj/%.o)) \
                $(FUZZ_DIR)/obj/sql_files.o $(FUZZ_DIR)/obj/openapi_doc.o
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

$(FUZZ_DIR)/obj/%.o: src/%.c | $(FUZZ_DIR)/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<
$(FUZZ_DIR)/obj/%.o: build/obj/%.c | $(FUZZ_DIR)/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<
$(FUZZ_DIR)/fuzz_%: test/fuzz/fuzz_%.c test/fuzz/fuzz.h $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJS) $(LDLIBS)
$(FUZZ_DIR)/obj:
	mkdir -p $@

fuzz-build: $(FUZZ_BINS)
# Each target for FUZZ_SECONDS from its seeds; fails on a crash, a leak or a
# timeout, leaving the input under build/fuzz/crashes/ (scripts/fuzz-run.sh).
fuzz: $(FUZZ_TARGETS:%=fuzz-run-%)
fuzz-run-%: $(FUZZ_DIR)/fuzz_%
	./scripts/fuzz-run.sh $* $(FUZZ_SECONDS)

# `make test` replays every seed and kept crasher through the same targets,
# built with $(CC) (and SAN=1's sanitizers): no clang needed there.
FUZZ_REPLAYS := $(FUZZ_TARGETS:%=$(BUILD)/test/unit_fuzz_%)
$(BUILD)/test/unit_fuzz_%: test/fuzz/fuzz_%.c test/fuzz/replay.c test/fuzz/fuzz.h \
                           $(LIBOBJS) | $(BUILD)/test
	$(CC) $(CFLAGS) -Itest/fuzz -DFUZZ_NAME='"$*"' $(LDFLAGS) -o $@ $< \
	    test/fuzz/replay.c $(LIBOBJS) $(LDLIBS)

unit: $(UNIT_BINS) $(FUZZ_REPLAYS)

# Debian packages of packages.txt (as root: installed when missing; fast when not).
deps:
	./scripts/install-deps.sh build dev

# TESTS=pattern narrows the integration tests (e.g. TESTS=test_api).
test: deps
	$(MAKE) --no-print-directory all unit swagger-ui
	GOPULSE_BIN=$(BIN) RECEIVER_BIN=$(RECEIVER) UNIT_DIR=$(BUILD)/test \
	GOPULSE_SAN=$(SAN) ./scripts/test-all.sh $(TESTS)

run:
	./scripts/run-dev.sh

# npm packages pinned in package-lock.json: @redocly/cli (lint) and
# swagger-ui-dist (the Swagger UI assets). Re-installed when the lock changes.
NODE_STAMP := node_modules/.gopulse-installed
docs-deps: $(NODE_STAMP)
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

SWAGGER_ASSETS := swagger-ui.css swagger-ui-bundle.js \
                  swagger-ui-standalone-preset.js favicon-32x32.png favicon-16x16.png
# --remove-destination: a new file, never one rewritten in place, since a
# running service maps them (truncating a mapped file would crash it).
swagger-ui: $(NODE_STAMP)
	cd node_modules/swagger-ui-dist && \
	    cp --remove-destination $(SWAGGER_ASSETS) ../../web/swagger/

# Fault soak (scripts/soak.py): two instances under steady production while PostgreSQL,
# Redis, the receiver and one instance fail at seeded random times; invariants at the end.
# SOAK_SECONDS (default 300) and SOAK_SEED (default random; printed first, to replay).
# Not part of `make test`.
SOAK_SECONDS ?= 300
soak: all
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_SEED=$(SOAK_SEED) GOPULSE_BIN=$(BIN) \
	RECEIVER_BIN=$(RECEIVER) GOPULSE_SAN=$(SAN) $(PYTHON) scripts/soak.py

# Installs the bench role's packages and builds first (see scripts/bench.sh).
bench:
	./scripts/bench.sh

# Rewrites the lines between README.md's config-table markers with the binary's
# own table (test/integration/test_config_docs.py fails while they differ).
docs: $(BIN)
	$(BIN) --config-table >$(BUILD)/config-table.md
	awk -v table=$(BUILD)/config-table.md ' \
	    /^<!-- END config-table/ { skip = 0; ends++ } \
	    !skip { print } \
	    /^<!-- BEGIN config-table/ { while ((getline l <table) > 0) print l; skip = 1; begins++ } \
	    END { exit !(begins == 1 && ends == 1 && !skip) }' README.md >$(BUILD)/README.md
	cp $(BUILD)/README.md README.md

format:
	$(CLANG_FORMAT) -i $(FORMAT_SRCS)

# Shows what `make format` would change in each file, then fails naming them.
format-check:
	@command -v $(CLANG_FORMAT) >/dev/null || \
	    { echo "format-check: $(CLANG_FORMAT) not found (packages.txt, role dev)" >&2; exit 1; }
	@bad=; for f in $(FORMAT_SRCS); do \
		$(CLANG_FORMAT) "$$f" | diff -u --label "$$f" --label "$$f (formatted)" "$$f" - \
		    || bad="$$bad $$f"; \
	done; \
	if [ -n "$$bad" ]; then \
		echo "format-check: not formatted (run make format):$$bad" >&2; \
		echo "format-check: $$($(CLANG_FORMAT) --version)" >&2; \
		exit 1; \
	fi

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(FUZZ_OBJS:.o=.d)
