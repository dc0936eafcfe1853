/* Unit tests for common/pc_conf (declarative INI tables) and cmd/pchatd/pchatd_conf (the
 * daemon's table, defaults and cross-field checks). Config mistakes must be refused at
 * start with one line that says where and what. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/pchatd/pchatd_conf.h"
#include "common/pc_conf.h"

/* ---- a small table of every type ----------------------------------------------------------- */

struct demo {
    int port;
    int count;
    bool flag;
    bool other;
    char *name;
    char *unset;
    size_t size;
};

#define F(field) offsetof(struct demo, field)
static const struct pc_conf_item DEMO[] = {
    {"net", "port", PC_CONF_INT, F(port), "5060", 1, 65535, "a port"},
    {"net", "count", PC_CONF_INT, F(count), "0", 0, 10, "a small count"},
    {"net", "flag", PC_CONF_BOOL, F(flag), "yes", 0, 0, "a switch"},
    {"misc", "other", PC_CONF_BOOL, F(other), "no", 0, 0, "another switch"},
    {"misc", "name", PC_CONF_STR, F(name), "default name", 0, 0, "a string"},
    {"misc", "unset", PC_CONF_STR, F(unset), NULL, 0, 0, "a string without default"},
    {"misc", "size", PC_CONF_SIZE, F(size), "64k", 1024, 1LL << 30, "a size"},
    {NULL, NULL, 0, 0, NULL, 0, 0, NULL},
};
#undef F

static char tmpdir[64];
static char conf_path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pchat-conf-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(conf_path, sizeof conf_path, "%s/test.conf", tmpdir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(conf_path);
    return rmdir(tmpdir);
}

static const char *write_conf(const char *text)
{
    FILE *f = fopen(conf_path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return conf_path;
}

/* Loads text over the defaults; returns the result, err holds the message. */
static bool load_demo(struct demo *d, const char *text, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    pc_conf_defaults(DEMO, d);
    err[0] = '\0';
    return pc_conf_load(DEMO, d, write_conf(text), err, errlen);
}

/* Asserts text is refused with exactly "<path>:<rest>". */
static void assert_load_error(const char *text, const char *rest)
{
    struct demo d;
    char err[512], want[512];
    if (load_demo(&d, text, err, sizeof err))
        fail_msg("accepted:\n%s", text);
    snprintf(want, sizeof want, "%s:%s", conf_path, rest);
    assert_string_equal(err, want);
    assert_null(strchr(err, '\n'));
    pc_conf_free(DEMO, &d);
}

static void defaults_fillEveryType(void **state)
{
    (void)state;
    struct demo d;
    memset(&d, 0xff, sizeof d); /* defaults must not depend on prior content... */
    d.name = d.unset = NULL;    /* ...except that strings are not freed */
    pc_conf_defaults(DEMO, &d);
    assert_int_equal(d.port, 5060);
    assert_int_equal(d.count, 0);
    assert_true(d.flag);
    assert_false(d.other);
    assert_string_equal(d.name, "default name");
    assert_null(d.unset);
    assert_int_equal(d.size, 65536);
    pc_conf_free(DEMO, &d);
    assert_null(d.name);
}

static void load_readsEveryTypeOverDefaults(void **state)
{
    (void)state;
    struct demo d;
    char err[256];
    bool ok = load_demo(&d,
                        "; a comment\n"
                        "# another\n"
                        "\n"
                        "[net]\n"
                        "port = 5061\n"
                        "flag = off ; inline comment\n"
                        "[misc]\n"
                        "name =   spaced value  \n"
                        "unset = set\n"
                        "size = 2M\n"
                        "other = TRUE\n",
                        err, sizeof err);
    if (!ok)
        fail_msg("%s", err);
    assert_int_equal(d.port, 5061);
    assert_int_equal(d.count, 0); /* untouched: the default stays */
    assert_false(d.flag);
    assert_true(d.other);
    assert_string_equal(d.name, "spaced value");
    assert_string_equal(d.unset, "set");
    assert_int_equal(d.size, 2 * 1024 * 1024);
    /* A later value of the same option replaces the earlier one without leaking it. */
    pc_conf_free(DEMO, &d);
    ok = load_demo(&d, "[misc]\nname = one\nname = two\n", err, sizeof err);
    assert_true(ok);
    assert_string_equal(d.name, "two");
    pc_conf_free(DEMO, &d);
    /* An empty file is the defaults. */
    ok = load_demo(&d, "", err, sizeof err);
    assert_true(ok);
    assert_int_equal(d.port, 5060);
    pc_conf_free(DEMO, &d);
}

/* The one-line error names file, line, section, option and value, and says what was
 * expected, including the bounds. */
static void load_badValueNamesFileLineAndOption(void **state)
{
    (void)state;
    assert_load_error("# comment\n\n[net]\nport = abc\n",
                      "4: [net] port = 'abc': expected an integer from 1 to 65535");
    assert_load_error("[net]\nport = 0\n", "2: [net] port = '0': expected an integer from 1 to 65535");
    assert_load_error("[net]\nport = 65536\n",
                      "2: [net] port = '65536': expected an integer from 1 to 65535");
    assert_load_error("[net]\nport = -1\n", "2: [net] port = '-1': expected an integer from 1 to 65535");
    assert_load_error("[net]\ncount = 99999999999999999999\n",
                      "2: [net] count = '99999999999999999999': expected an integer from 0 to 10");
    assert_load_error("[net]\nport =\n", "2: [net] port = '': expected an integer from 1 to 65535");
    assert_load_error("[net]\nflag = maybe\n", "2: [net] flag = 'maybe': expected yes or no");
    assert_load_error("[misc]\nsize = 1023\n",
                      "2: [misc] size = '1023': expected a size (e.g. 64k, 20M) from 1024 to 1073741824");
    assert_load_error("[misc]\nsize = 2G\n",
                      "2: [misc] size = '2G': expected a size (e.g. 64k, 20M) from 1024 to 1073741824");
    assert_load_error("[misc]\nsize = 12 parsecs\n",
                      "2: [misc] size = '12 parsecs': expected a size (e.g. 64k, 20M) from 1024 to 1073741824");
    /* The first mistake is the one reported. */
    assert_load_error("[net]\nport = 1\ncount = 11\nport = x\n",
                      "3: [net] count = '11': expected an integer from 0 to 10");
}

static void load_rejectsUnknownOptionsAndSections(void **state)
{
    (void)state;
    assert_load_error("[net]\nport = 1\nprot = 2\n",
                      "3: unknown option [net] prot (see deploy/pchatd.conf.example)");
    /* The right name in the wrong section is still unknown. */
    assert_load_error("[misc]\nport = 1\n",
                      "2: unknown option [misc] port (see deploy/pchatd.conf.example)");
    assert_load_error("[nett]\n\nport = 1\n",
                      "3: unknown option [nett] port (see deploy/pchatd.conf.example)");
    /* Options before any section belong to none. */
    assert_load_error("port = 1\n", "1: unknown option [] port (see deploy/pchatd.conf.example)");
    /* Names are exact. */
    assert_load_error("[NET]\nport = 1\n",
                      "2: unknown option [NET] port (see deploy/pchatd.conf.example)");
}

static void load_reportsSyntaxErrorsAndMissingFiles(void **state)
{
    (void)state;
    assert_load_error("[net]\nport = 1\njust words\n",
                      "3: syntax error (expected 'name = value' or '[section]')");
    /* Whichever comes first is reported: a broken section header is not hidden behind the
     * "unknown option" its following lines then cause. */
    assert_load_error("[net\nport = 1\n", "1: syntax error (expected 'name = value' or '[section]')");
    assert_load_error("[net]\nport = x\njust words\n",
                      "2: [net] port = 'x': expected an integer from 1 to 65535");

    struct demo d = {0};
    char err[256], missing[160];
    snprintf(missing, sizeof missing, "%s/absent.conf", tmpdir);
    assert_false(pc_conf_load(DEMO, &d, missing, err, sizeof err));
    char want[300];
    snprintf(want, sizeof want, "cannot read config file %s: No such file or directory", missing);
    assert_string_equal(err, want);
}

static void parseSize_acceptsUnitsRejectsJunk(void **state)
{
    (void)state;
    unsigned long long v;
    const struct {
        const char *s;
        unsigned long long v;
    } ok[] = {{"0", 0},          {"512", 512},         {"512b", 512},
              {"64k", 65536},    {"64KB", 65536},      {"64KiB", 65536},
              {"20000KB", 20480000}, {"1M", 1048576},  {"3mib", 3145728},
              {"2G", 2147483648ull}, {"16gb", 17179869184ull}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        v = 12345;
        if (!pc_parse_size(ok[i].s, &v) || v != ok[i].v)
            fail_msg("'%s' -> %llu, expected %llu", ok[i].s, v, ok[i].v);
    }
    const char *bad[] = {"", "k", "-1", " 1", "1 k", "1kk", "1T", "0x10", "1.5M",
                         "18446744073709551616", "17179869184G"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (pc_parse_size(bad[i], &v))
            fail_msg("'%s' accepted as %llu", bad[i], v);
}

static void set_appliesCommandLineOverride(void **state)
{
    (void)state;
    struct demo d = {0};
    char err[256];
    pc_conf_defaults(DEMO, &d);
    assert_true(pc_conf_set(DEMO, &d, "net.port=7000", err, sizeof err));
    assert_int_equal(d.port, 7000);
    assert_true(pc_conf_set(DEMO, &d, "misc.name=a=b.c", err, sizeof err)); /* value may hold = and . */
    assert_string_equal(d.name, "a=b.c");
    assert_true(pc_conf_set(DEMO, &d, "misc.size=1k", err, sizeof err));
    assert_int_equal(d.size, 1024);

    assert_false(pc_conf_set(DEMO, &d, "net.port=0", err, sizeof err));
    assert_string_equal(err, "[net] port = '0': expected an integer from 1 to 65535");
    assert_false(pc_conf_set(DEMO, &d, "net.nope=1", err, sizeof err));
    assert_string_equal(err, "unknown option [net] nope");
    assert_false(pc_conf_set(DEMO, &d, "port=1", err, sizeof err));
    assert_string_equal(err, "'port=1': expected section.name=value");
    assert_false(pc_conf_set(DEMO, &d, "net.port", err, sizeof err));
    assert_false(pc_conf_set(DEMO, &d, "port=1.5", err, sizeof err)); /* the dot is in the value */
    assert_int_equal(d.port, 7000); /* refusals change nothing */
    pc_conf_free(DEMO, &d);
}

/* --print-config output is itself a valid config that gives back the same settings. */
static void print_writesLoadableConfig(void **state)
{
    (void)state;
    struct demo d = {0}, back = {0};
    char err[256];
    pc_conf_defaults(DEMO, &d);
    assert_true(pc_conf_set(DEMO, &d, "net.port=6000", err, sizeof err));
    assert_true(pc_conf_set(DEMO, &d, "net.flag=no", err, sizeof err));
    assert_true(pc_conf_set(DEMO, &d, "misc.size=3M", err, sizeof err));
    FILE *f = fopen(conf_path, "w");
    assert_non_null(f);
    pc_conf_print(DEMO, &d, f);
    fclose(f);

    pc_conf_defaults(DEMO, &back);
    if (!pc_conf_load(DEMO, &back, conf_path, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(back.port, 6000);
    assert_false(back.flag);
    assert_int_equal(back.size, 3 * 1024 * 1024);
    assert_string_equal(back.name, "default name");
    assert_string_equal(back.unset, ""); /* printed empty: an empty string now */
    pc_conf_free(DEMO, &d);
    pc_conf_free(DEMO, &back);

    /* Help lines are there, as comments before their option. */
    f = fopen(conf_path, "r");
    char text[2048];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_non_null(strstr(text, "[net]\n# a port\nport = 6000\n"));
    assert_non_null(strstr(text, "# a switch\nflag = no\n"));
}

/* ---- pchatd's table --------------------------------------------------------------------- */

static void pchatd_defaultsAreValid(void **state)
{
    (void)state;
    struct pchatd_conf c;
    char err[256] = "";
    if (!pchatd_conf_load(&c, NULL, err, sizeof err))
        fail_msg("defaults rejected: %s", err);
    assert_int_equal(c.node_id, 1);
    assert_string_equal(c.node_name, "n1");
    assert_string_equal(c.data_dir, "run/n1");
    assert_string_equal(c.admin_socket, "");
    assert_int_equal(c.sip_tcp_port, 5060);
    assert_string_equal(c.domain, "example.test");
    assert_string_equal(c.chat_user, "pchat");
    assert_int_equal(c.sip_max_header_bytes, 16 * 1024);
    assert_int_equal(c.sip_max_body_bytes, 64 * 1024);
    assert_int_equal(c.sip_out_soft_bytes, 1024 * 1024);
    assert_int_equal(c.sip_out_hard_bytes, 8 * 1024 * 1024);
    assert_string_equal(c.auth_mode, "off");
    assert_true(c.auth_allow_unknown_users);
    assert_int_equal(c.cluster_shards, 16);
    assert_string_equal(c.cluster_listen, "127.0.0.1:7600");
    assert_string_equal(c.cluster_peers, "");
    assert_int_equal(c.cluster_election_ms, 1000);
    assert_int_equal(c.chat_default_history, 30);
    assert_string_equal(c.compliance_capture, "none");
    assert_false(c.seed_demo);
    pchatd_conf_free(&c);
    assert_null(c.domain);
}

/* Every entry is complete, unique and has a default its own bounds accept. */
static void pchatd_tableIsConsistent(void **state)
{
    (void)state;
    size_t n = 0;
    for (const struct pc_conf_item *it = pchatd_conf_table; it->name != NULL; it++, n++) {
        assert_non_null(it->section);
        assert_non_null(it->help);
        assert_non_null(it->def);
        assert_true(it->min <= it->max);
        for (const struct pc_conf_item *o = pchatd_conf_table; o != it; o++)
            if (strcmp(o->section, it->section) == 0 && strcmp(o->name, it->name) == 0)
                fail_msg("[%s] %s listed twice", it->section, it->name);
        struct pchatd_conf c = {0};
        char assignment[256], err[256];
        snprintf(assignment, sizeof assignment, "%s.%s=%s", it->section, it->name, it->def);
        if (!pc_conf_set(pchatd_conf_table, &c, assignment, err, sizeof err))
            fail_msg("default refused: %s", err);
        pchatd_conf_free(&c);
    }
    assert_true(n >= 30);
}

static bool load_pchatd(const char *text, char *err, size_t errlen)
{
    struct pchatd_conf c;
    err[0] = '\0';
    bool ok = pchatd_conf_load(&c, write_conf(text), err, errlen);
    pchatd_conf_free(&c); /* also after a failure: strings may have been set */
    return ok;
}

static void pchatd_badValueIsOneLineNamingOption(void **state)
{
    (void)state;
    char err[512], want[512];
    assert_false(load_pchatd("[node]\nid = 2\n[sip]\ntcp_port = 70000\n", err, sizeof err));
    snprintf(want, sizeof want, "%s:4: [sip] tcp_port = '70000': expected an integer from 1 to 65535",
             conf_path);
    assert_string_equal(err, want);

    assert_false(load_pchatd("[sip]\nmax_body_bytes = 1G\n", err, sizeof err));
    snprintf(want, sizeof want,
             "%s:2: [sip] max_body_bytes = '1G': expected a size (e.g. 64k, 20M) from 1024 to 16777216",
             conf_path);
    assert_string_equal(err, want);

    assert_false(load_pchatd("[seed]\ndemo = sometimes\n", err, sizeof err));
    assert_non_null(strstr(err, ":2: [seed] demo = 'sometimes': expected yes or no"));

    /* [cluster] peers and listen must describe a pool this node is in. */
    assert_false(load_pchatd("[cluster]\npeers = 1=127.0.0.1:7600, 2=x\n", err, sizeof err));
    assert_non_null(strstr(err, "[cluster] peers: '2=x' is not id=address:port"));
    assert_false(load_pchatd("[cluster]\npeers = 2=127.0.0.1:7610\n", err, sizeof err));
    assert_non_null(strstr(err, "[cluster] peers does not list this node: add 1=127.0.0.1:7600"));
    assert_false(load_pchatd("[cluster]\npeers = 1=127.0.0.1:7601\n", err, sizeof err));
    assert_non_null(strstr(err, "make them agree"));
    assert_false(load_pchatd("[cluster]\npeers = 1=127.0.0.1:7600,1=127.0.0.1:7610\n", err, sizeof err));
    assert_non_null(strstr(err, "listed twice"));
    assert_false(load_pchatd("[cluster]\nlisten = localhost\n", err, sizeof err));
    assert_non_null(strstr(err, "[cluster] listen = 'localhost': expected address:port"));
    assert_false(load_pchatd("[cluster]\nheartbeat_ms = 600\n", err, sizeof err));
    assert_non_null(strstr(err, "at most half of election_timeout_ms"));
    assert_true(load_pchatd("[cluster]\npeers = 1=127.0.0.1:7600 2=127.0.0.1:7610,3=127.0.0.1:7620\n", err, sizeof err));

    assert_false(load_pchatd("[sip]\ntcp_prot = 5060\n", err, sizeof err));
    assert_non_null(strstr(err, ":2: unknown option [sip] tcp_prot"));
    assert_false(load_pchatd("[network]\ntcp_port = 5060\n", err, sizeof err));
    assert_non_null(strstr(err, ":2: unknown option [network] tcp_port"));

    /* A good file loads. */
    if (!load_pchatd("[node]\nid = 3\nname = n3\n[sip]\ntcp_port = 5070\ndomain = corp.example\n"
                     "[auth]\nmode = digest\n[compliance]\ncapture = lync\n", err, sizeof err))
        fail_msg("%s", err);
}

/* Checks across fields, and of values only the whole configuration can judge. */
static void pchatd_validateRejectsBadCombinations(void **state)
{
    (void)state;
    const struct {
        const char *text, *want;
    } cases[] = {
        {"[node]\nlog_level = chatty\n",
         "[node] log_level = 'chatty': expected debug, info, notice, warn or error"},
        {"[auth]\nmode = ldap\n", "[auth] mode = 'ldap': expected off or digest"},
        {"[compliance]\ncapture = everything\n", "[compliance] capture = 'everything': expected"},
        {"[sip]\ndomain = Example.test\n",
         "[sip] domain = 'Example.test': use lower-case letters, digits, '-', '.', '_'"},
        {"[sip]\ndomain = a b\n", "[sip] domain = 'a b'"},
        {"[sip]\nchat_user = <x>\n", "[sip] chat_user = '<x>'"},
        {"[sip]\nchat_user =\n", "[sip] chat_user must not be empty"},
        {"[sip]\nout_soft_bytes = 9M\nout_hard_bytes = 8M\n",
         "[sip] out_soft_bytes must not exceed out_hard_bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512];
        if (load_pchatd(cases[i].text, err, sizeof err))
            fail_msg("accepted:\n%s", cases[i].text);
        if (strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("for:\n%sgot '%s'\nexpected '%s…'", cases[i].text, err, cases[i].want);
        assert_null(strchr(err, '\n'));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_fillEveryType),
        cmocka_unit_test(load_readsEveryTypeOverDefaults),
        cmocka_unit_test(load_badValueNamesFileLineAndOption),
        cmocka_unit_test(load_rejectsUnknownOptionsAndSections),
        cmocka_unit_test(load_reportsSyntaxErrorsAndMissingFiles),
        cmocka_unit_test(parseSize_acceptsUnitsRejectsJunk),
        cmocka_unit_test(set_appliesCommandLineOverride),
        cmocka_unit_test(print_writesLoadableConfig),
        cmocka_unit_test(pchatd_defaultsAreValid),
        cmocka_unit_test(pchatd_tableIsConsistent),
        cmocka_unit_test(pchatd_badValueIsOneLineNamingOption),
        cmocka_unit_test(pchatd_validateRejectsBadCombinations),
    };
    return cmocka_run_group_tests_name("conf", tests, setup, teardown);
}
