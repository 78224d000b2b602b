/* mail_date - RFC 5322 date-time, locale-independent */
#include "mail/mail_date.h"

#include <stdlib.h>

/* mail_date - append the date-time of t */
void mail_date(buf_t *out, time_t t)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    long off;
    char zone[16];

    localtime_r(&t, &tm);
    off = tm.tm_gmtoff / 60;
    if (strftime(zone, sizeof(zone), "%Z", &tm) == 0)
        zone[0] = 0;
    buf_printf(out, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday % 7], tm.tm_mday,
               months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
               off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
    if (zone[0])
        buf_printf(out, " (%s)", zone);
}
