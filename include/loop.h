/* loop.h - priorities on the one event loop: the API's reads go first.
 *
 * A drain keeps the loop busy with webhook transfers and the delivery
 * connection's results; the answer to an API read that arrives meanwhile
 * would wait behind every callback made active in the same poll (dozens, a
 * few milliseconds). The API's database connections run at a higher
 * priority, and the loop polls again after a few callbacks of the rest, so
 * a read's answer goes out as soon as it is in (service.c sends the next
 * statement of reads later, with the rest of the poll's requests in it).
 *
 * Only those connections: each has at most one statement of reads in
 * flight, so they cannot keep the rest from running. HTTP requests stay
 * with delivery; above it, a flood of requests (wrk on /health) cut a
 * drain from 12,000 to 2,900 messages a second. */
#ifndef GOPULSE_LOOP_H
#define GOPULSE_LOOP_H

/* libevent's default for new events is the second level, the rest. */
#define LOOP_PRIORITIES 2
#define LOOP_PRIO_API_DB 0
/* Callbacks of the rest run between two polls, at most. */
#define LOOP_BURST 16
#define LOOP_PRIO_REST 1

#endif
