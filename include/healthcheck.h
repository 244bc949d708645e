/* healthcheck.h - `gopulse-messages healthcheck`: GET /health on this
 * host's port, for a container HEALTHCHECK with no curl in the image. */
#ifndef GOPULSE_HEALTHCHECK_H
#define GOPULSE_HEALTHCHECK_H

/* 0 when /health answers 200 within a few seconds, 1 otherwise (with one
 * line on stderr saying why). Reads PORT like the service does. */
int healthcheck_run(void);

#endif
