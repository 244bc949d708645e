/* healthcheck.h - `gopulse-messages healthcheck`: GET /health where the
 * service listens, for a container HEALTHCHECK with no curl in the image. */
#ifndef GOPULSE_HEALTHCHECK_H
#define GOPULSE_HEALTHCHECK_H

/* 0 when /health answers 200 within a few seconds, 1 otherwise (with one
 * line on stderr saying why). Reads PORT and BIND_ADDR with the service's
 * own parsers, and dials BIND_ADDR (loopback when it is a wildcard). */
int healthcheck_run(void);

#endif
