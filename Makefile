# GoPulse Messages - plain make, pkg-config for every library.
#   make            build/gopulse-messages and build/webhook-receiver
#   make SAN=1      the same with AddressSanitizer + UBSan, under build/san/
#   make test       unit tests, then integration tests against real servers
#   make run        local PostgreSQL, Redis and webhook receiver + the service
#   make bench      benchmarks
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
                                 test/unit/*.[ch]))
CLANG_FORMAT ?= clang-format

.PHONY: all test unit run bench clean format format-check docs docs-deps \
        swagger-ui deps
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

$(RECEIVER): test/receiver.c | $(BUILD)/obj
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

$(BUILD)/test/unit_%: test/unit/%.c test/unit/harness.h $(LIBOBJS) | $(BUILD)/test
	$(CC) $(CFLAGS) -Itest/unit $(LDFLAGS) -o $@ $< $(LIBOBJS) $(LDLIBS)

$(BUILD)/obj $(BUILD)/test:
	mkdir -p $@

unit: $(UNIT_BINS)

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

-include $(OBJS:.o=.d)
