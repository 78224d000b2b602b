#ifndef STORK_MAIL_DATE_H
#define STORK_MAIL_DATE_H
/*
 * NAME
 *	mail_date - RFC 5322 date-time for headers Stork writes
 * DESCRIPTION
 *	mail_date(out, t) appends "Mon, 2 Oct 2023 12:00:00 +0200 (CEST)":
 *	local time, numeric zone, the zone name as a comment. Day and month
 *	names are English whatever the locale (RFC 5322 3.3).
 */
#include <time.h>
#include "util/buf.h"

void mail_date(buf_t *out, time_t t);

#endif
