#ifndef STORK_CONFIG_CONF_H
#define STORK_CONFIG_CONF_H
/*
 * NAME
 *	conf - main.cf: parsing, $name expansion, typed values, validation
 * SUMMARY
 *	conf_open() reads CONFIG_DIR/main.cf ("name = value", lines that
 *	start with white space continue the previous line, '#' comments,
 *	blank lines ignored). Every parameter Stork knows is declared once in
 *	lib/config/params_*.def (PARAM(name, type, default, min, max)), which
 *	gives its type and compiled-in default. Values are expanded on read:
 *	$name, ${name} and $(name) refer to other parameters (their main.cf
 *	value or default); "$$" is a literal '$'. Expansion depth is capped.
 * DESCRIPTION
 *	conf_open(dir, &why): NULL on a syntax error; why names
 *	"DIR/main.cf:LINE: ...". A missing main.cf is fine (all defaults).
 *	conf_validate(conf, errors): every name in main.cf (and overrides)
 *	must be declared, and every value must convert to its type within
 *	min..max; appends one line per problem to errors,
 *	"DIR/main.cf:12: message_size_limit: bad size value \"abc\"" or
 *	"DIR/main.cf:3: unknown parameter name: foo", and returns the number
 *	of problems. Programs call it once at start and refuse to run on >0.
 *	conf_override(conf, "name=value", &why): as master.cf -o or a
 *	command's -o; the origin reported is "override".
 *	conf_str/int/bool/list: the expanded, converted value. Asking for an
 *	undeclared name is a program bug (msg_panic). A value that fails to
 *	convert (only possible when conf_validate was skipped) yields the
 *	default. conf_list splits on commas and white space.
 *	conf_foreach(conf, flags, fn, ctx): every declared parameter in name
 *	order, with its expanded value; flags CONF_FOREACH_NONDEFAULT (only
 *	names set in main.cf/overrides) or CONF_FOREACH_DEFAULTS (the
 *	compiled-in default, unexpanded). For storkconf.
 *	conf_is_known(name): declared?
 *	conf_config_dir(conf): the directory given to conf_open.
 * TYPES
 *	CONF_STR (text), CONF_INT (decimal), CONF_BOOL (yes/no, true/false,
 *	1/0, on/off), CONF_SIZE (bytes; k/m/g suffixes), CONF_TIME (seconds;
 *	s/m/h/d/w suffixes), CONF_LIST (comma/space separated).
 * OWNERSHIP
 *	Strings and lists returned are owned by conf and live until conf_free.
 * LIMITS
 *	main.cf at most 1 MiB; a logical line at most 64 KiB; expansion at
 *	most 32 levels deep and 64 KiB long.
 */
#include <stdbool.h>
#include <stdint.h>
#include "util/buf.h"

typedef enum {
    CONF_STR, CONF_INT, CONF_BOOL, CONF_SIZE, CONF_TIME, CONF_LIST
} conf_type_t;

typedef struct conf_param {
    const char *name;
    conf_type_t type;
    const char *defval;
    int64_t min, max;
} conf_param_t;

typedef struct conf conf_t;

#define CONF_FOREACH_NONDEFAULT 1
#define CONF_FOREACH_DEFAULTS   2

conf_t *conf_open(const char *config_dir, const char **why_r);
void conf_free(conf_t **conf);
int conf_override(conf_t *conf, const char *name_eq_value, const char **why_r);
int conf_validate(conf_t *conf, buf_t *errors);
const char *conf_str(conf_t *conf, const char *name);
int64_t conf_int(conf_t *conf, const char *name);
bool conf_bool(conf_t *conf, const char *name);
char **conf_list(conf_t *conf, const char *name);
bool conf_is_known(const char *name);
const conf_param_t *conf_param_lookup(const char *name);
const char *conf_config_dir(const conf_t *conf);
void conf_foreach(conf_t *conf, int flags,
                  void (*fn)(const char *name, const char *value, void *ctx), void *ctx);

#endif
