# GoPulse Messages - plain make, pkg-config for every library.
#   make            build/gopulse-messages and build/webhook-receiver
#   make SAN=1      the same with AddressSanitizer + UBSan, under build/san/
#   make test       unit tests, then integration tests against real servers
#   make run        local PostgreSQL, Redis and webhook receiver + the service
#   make bench      benchmarks

PKGS    := libevent libpq hiredis libcurl jansson
CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes
override CFLAGS += -std=c11 -D_GNU_SOURCE $(WARN) -Iinclude \
                   $(shell pkg-config --cflags $(PKGS))
LDLIBS  := $(shell pkg-config --libs $(PKGS)) -lm

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
OBJS     := $(SRCS:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/sql_files.o
LIBOBJS  := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
UNIT_SRCS := $(sort $(wildcard test/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:test/unit/%.c=$(BUILD)/test/unit_%)
SQL      := $(sort $(wildcard sql/*.sql))

.PHONY: all test unit run bench clean format
all: $(BIN) $(RECEIVER)

$(BIN): $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: src/%.c | $(BUILD)/obj
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/obj/sql_files.c: $(SQL) scripts/embed-sql.sh | $(BUILD)/obj
	./scripts/embed-sql.sh $@ $(SQL)

$(BUILD)/obj/sql_files.o: $(BUILD)/obj/sql_files.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(RECEIVER): test/receiver.c | $(BUILD)/obj
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)

$(BUILD)/test/unit_%: test/unit/%.c test/unit/harness.h $(LIBOBJS) | $(BUILD)/test
	$(CC) $(CFLAGS) -Itest/unit $(LDFLAGS) -o $@ $< $(LIBOBJS) $(LDLIBS)

$(BUILD)/obj $(BUILD)/test:
	mkdir -p $@

unit: $(UNIT_BINS)

# TESTS=pattern narrows the integration tests (e.g. TESTS=test_api).
test: all unit
	GOPULSE_BIN=$(BIN) RECEIVER_BIN=$(RECEIVER) UNIT_DIR=$(BUILD)/test \
	GOPULSE_SAN=$(SAN) ./scripts/test-all.sh $(TESTS)

run:
	./scripts/run-dev.sh

bench: all
	./scripts/bench.sh

format:
	clang-format -i src/*.c include/*.h test/receiver.c test/unit/*.[ch]

clean:
	rm -rf build

-include $(OBJS:.o=.d)
