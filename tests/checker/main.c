/* pchat-check: proves DESIGN.md §3 guarantees 1-2 over what test clients saw and what the
 * nodes stored, or reports the first violation with file and line. */
#include "tests/checker/checker.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static void usage(FILE *out)
{
    fputs(
        "usage: pchat-check [OPTIONS] LOG...\n"
        "Checks pchat's durability and ordering guarantees (DESIGN.md section 3, 1-2) over the\n"
        "logs written by test clients and the history dumps taken from the nodes after a run.\n"
        "\n"
        "Options:\n"
        "  --allow-lag      a node's history of a room may be a prefix of the longest one (a\n"
        "                   node that was down or is catching up); an acked post then needs to\n"
        "                   be in the longest history only\n"
        "  --allow-gaps     a room's seqs need not run 1, 2, 3... without holes\n"
        "  --allow-foreign  histories may hold messages that no client log sent\n"
        "  --all            report every violation, not only the first\n"
        "  -h, --help       this text\n"
        "\n"
        "Input: each LOG (- is stdin) is one client log or one node dump, in any order. Lines\n"
        "of TAB-separated fields; inside a field TAB is written \\t, newline \\n and backslash\n"
        "\\\\ (no other escapes). Empty lines and lines starting with # are skipped.\n"
        "Client log:\n"
        "  C <client> [author]             first record: whose log; author = how history names the\n"
        "                                  sender of its posts (default: the client name)\n"
        "  S <room> <msgid> <text>         a post sent; msgid unique in the log, text unique in\n"
        "                                  the room over all logs (put client+msgid in it)\n"
        "  A <msgid> [<seq>]               the post was acknowledged (seq empty or 0: not known)\n"
        "  F <msgid> [<reason>]            the post was definitively refused (e.g. SIP 403/503)\n"
        "  U <msgid> [<reason>]            outcome unknown (connection lost before the answer)\n"
        "  J <room>                        (re)joined the room: live delivery starts afresh\n"
        "  R <room> <seq> <author> <text>  a live delivery, in arrival order\n"
        "  A/F/U follow their S, at most one per post; a post with none counts as unknown.\n"
        "Node dump:\n"
        "  N <node>                        first record: which node\n"
        "  H <room> <seq> <author> <text>  one message of the node's stored history of the room\n"
        "\n"
        "Checks, in this order (a history message is a post's when room and text match; a\n"
        "room's reference history is its longest one: most messages, then highest last seq,\n"
        "then the first given):\n"
        "  1. an acked post is in every node's history exactly once; a refused post in none;\n"
        "     an unknown one at most once in each.\n"
        "  2. each node's history of a room has strictly increasing seqs 1, 2, 3... (holes\n"
        "     allowed with --allow-gaps); all nodes' histories of a room are identical (with\n"
        "     --allow-lag: prefixes of the reference).\n"
        "  3. per client and room, live deliveries have strictly increasing seqs (so no\n"
        "     duplicates, also across rejoins), each equals the reference history at its seq\n"
        "     (seq, author, text), and from a J (or the first delivery) to the next J none of\n"
        "     the history is skipped. An ack's seq, when given, is the post's seq in history.\n"
        "  4. every history message was sent by a client log (unless --allow-foreign), and by\n"
        "     the client named as its author (always).\n"
        "With no node dump, check 3 compares deliveries with each other instead of with the\n"
        "history: one message per room and seq, one seq per post, acks' seqs as delivered, no\n"
        "refused post delivered.\n"
        "\n"
        "Output (stdout) and exit status:\n"
        "  0  pchat-check: OK: <clients> clients, <nodes> nodes, <rooms> rooms, <sent> sent,\n"
        "     <acked> acked, <refused> refused, <unknown> unknown (<k> committed),\n"
        "     <delivered> deliveries checked      (k: unknown posts in some node's history)\n"
        "  1  pchat-check: VIOLATION: <what> (<file>:<line>)   (then the counts line)\n"
        "  2  bad usage, or on stderr: pchat-check: <file>:<line>: <what is wrong with the input>\n"
        "     (line 0: the file could not be read)\n",
        out);
}

int main(int argc, char **argv)
{
    enum { OPT_LAG = 256, OPT_GAPS, OPT_FOREIGN, OPT_ALL };
    static const struct option longopts[] = {
        {"allow-lag", no_argument, NULL, OPT_LAG},
        {"allow-gaps", no_argument, NULL, OPT_GAPS},
        {"allow-foreign", no_argument, NULL, OPT_FOREIGN},
        {"all", no_argument, NULL, OPT_ALL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct checker ck = {0};
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_LAG: ck.allow_lag = true; break;
        case OPT_GAPS: ck.allow_gaps = true; break;
        case OPT_FOREIGN: ck.allow_foreign = true; break;
        case OPT_ALL: ck.all = true; break;
        case 'h': usage(stdout); return 0;
        default:
            fprintf(stderr, "pchat-check: see pchat-check --help\n");
            return 2;
        }
    }
    if (optind == argc) {
        fprintf(stderr, "pchat-check: no input files (see pchat-check --help)\n");
        return 2;
    }
    for (int i = optind; i < argc; i++) {
        if (!ck_parse_file(&ck, argv[i])) {
            ck_free(&ck);
            return 2;
        }
    }
    ck_index(&ck);
    bool ok = ck_run(&ck);
    ck_print_counts(&ck, ok ? "OK: " : "");
    ck_free(&ck);
    return ok ? 0 : 1;
}
