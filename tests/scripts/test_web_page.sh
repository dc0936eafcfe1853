#!/usr/bin/env bash
# The room management page end to end: headless Chromium (driven over the WebDriver protocol
# by chromedriver, spoken with python3's urllib) signs in at GET /, is refused with a wrong
# password, creates a room with the form and sees it listed; then a SIP client finds the room
# (chansrch) and joins it.
set -u
cd "$(dirname "$0")/../.."
build=${PCHAT_BUILD:-build}
pass=0 fail=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAILED: $1"; fail=$((fail + 1)); }

chromium=$(command -v chromium || true)
chromedriver=$(command -v chromedriver || true)
if [ -z "$chromium" ] || [ -z "$chromedriver" ]; then
  echo "SKIPPED: chromium or chromedriver is not installed (make deps installs them)"
  echo "pchat-summary: 0 passed, 0 failed"
  exit 0
fi

dir=$(mktemp -d /tmp/pchat-web-XXXXXX)
pid= dpid=
cleanup() {
  [ -n "$dpid" ] && kill -- -"$dpid" 2>/dev/null
  [ -n "$pid" ] && { kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
  # Any browser process left behind (it runs with this test's own profile directory).
  for p in $(ps -eo pid=,args= | awk -v d="$dir/chrome" 'index($0, d) {print $1}'); do
    kill -9 "$p" 2>/dev/null
  done
  rm -rf "$dir"
}
trap cleanup EXIT
base=$(( 24000 + ($$ % 50) * 40 ))
sip=$base cl=$((base + 1)) web=$((base + 2)) wd=$((base + 3))

cat > "$dir/node.conf" <<CONF
[node]
data_dir = $dir/data
[sip]
tcp_port = $sip
tls_port = 0
[cluster]
listen = 127.0.0.1:$cl
[web]
port = $web
[auth]
mode = digest
[seed]
demo = yes
CONF
"$build/bin/pchatd" -c "$dir/node.conf" > "$dir/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "seed: demo" "$dir/log" && break; sleep 0.1; done
if ! grep -q "seed: demo" "$dir/log"; then
  bad "the node did not start: $(tail -3 "$dir/log")"
  echo "pchat-summary: $pass passed, $fail failed"; exit 1
fi

answer=$(curl -s -H "Authorization: Bearer $(cat "$dir/data/admin.token")" \
  "http://127.0.0.1:$web/api/admin" \
  -d '{"op":"user.passwd","user":"alice@example.test","password":"alice-secret-1"}')
answer2=$(curl -s -H "Authorization: Bearer $(cat "$dir/data/admin.token")" \
  "http://127.0.0.1:$web/api/admin" \
  -d '{"op":"user.passwd","user":"admin@example.test","password":"admin-secret-1"}')
if [[ "$answer$answer2" == *'"ok":true'*'"ok":true'* ]]; then
  ok "the admin API sets alice's and admin's passwords"
else
  bad "user.passwd: $answer $answer2"
fi

setsid "$chromedriver" --port="$wd" > "$dir/chromedriver.log" 2>&1 &
dpid=$!

# The browser's part. Each check prints "ok: …" or "FAILED: …".
python3 - "$web" "$wd" "$chromium" "$dir/chrome" > "$dir/browser.out" 2>&1 <<'PY'
import json, sys, time, urllib.error, urllib.request

web, wd, chromium, profile = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
page = "http://127.0.0.1:%s/" % web
driver = "http://127.0.0.1:%s" % wd
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"

def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(driver + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as res:
            return json.load(res)["value"]
    except urllib.error.HTTPError as e:
        value = json.load(e)["value"]
        raise RuntimeError("%s %s: %s: %s" % (method, path, value.get("error"),
                                              value.get("message", "").splitlines()[0]))

def until(what, cond, timeout=10.0):
    end = time.time() + timeout
    while True:
        try:
            v = cond()
            if v:
                return v
        except RuntimeError:
            pass
        if time.time() > end:
            raise RuntimeError("timed out waiting for " + what)
        time.sleep(0.1)

def check(name, fn):
    try:
        fn()
        print("ok: " + name)
    except Exception as e:
        try:  # what the page told the user, if anything
            if shown("#error"):
                e = "%s (#error: %s)" % (e, text("#error"))
        except Exception:
            pass
        print("FAILED: %s: %s" % (name, e))

for _ in range(100):
    try:
        if call("GET", "/status").get("ready"):
            break
    except Exception:
        pass
    time.sleep(0.1)

session = call("POST", "/session", {"capabilities": {"alwaysMatch": {
    "browserName": "chrome",
    "goog:chromeOptions": {"binary": chromium, "args": [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--user-data-dir=" + profile]}}}})["sessionId"]
s = "/session/" + session

def find(css):
    return call("POST", s + "/element", {"using": "css selector", "value": css})[ELEMENT]
def text(css):
    return call("GET", s + "/element/%s/text" % find(css))
def shown(css):
    return call("GET", s + "/element/%s/displayed" % find(css))
def xfind(xpath):
    return call("POST", s + "/element", {"using": "xpath", "value": xpath})[ELEMENT]
def xclick(xpath):
    call("POST", s + "/element/%s/click" % xfind(xpath), {})
def click(css):
    call("POST", s + "/element/%s/click" % find(css), {})
def type_in(css, value):
    e = find(css)
    call("POST", s + "/element/%s/clear" % e, {})
    call("POST", s + "/element/%s/value" % e, {"text": value})

try:
    call("POST", s + "/url", {"url": page})

    def wrong_password():
        until("the sign-in form", lambda: shown("#login-submit"))
        type_in("#login-user", "alice")
        type_in("#login-password", "not-her-password")
        click("#login-submit")
        msg = until("an error in #error", lambda: shown("#error") and text("#error"))
        if "password" not in msg:
            raise RuntimeError("#error says %r" % msg)
        if shown("#app") or not shown("#login"):
            raise RuntimeError("the page left the sign-in form")
    check("a wrong password shows the server's refusal in #error", wrong_password)

    def sign_in():
        type_in("#login-password", "alice-secret-1")
        click("#login-submit")
        me = until("#me to name alice", lambda: "alice" in text("#me").lower() and text("#me"))
        until("the Lobby in #rooms", lambda: "Lobby" in text("#rooms"))
        if shown("#error"):
            raise RuntimeError("#error still shows %r" % text("#error"))
        print("  #me: " + me)
    check("alice signs in; #me shows her and #rooms lists the Lobby", sign_in)

    def create_room():
        type_in("#new-room-name", "Web Made Room")
        click('#new-room-category option[value="General"]')
        type_in("#new-room-description", "made by the browser test")
        click('#new-room-privacy option[value="open"]')
        click("#new-room-submit")
        until("Web Made Room in #rooms", lambda: "Web Made Room" in text("#rooms"))
        for t in ("#my-rooms", "#managed-rooms"):
            if "Web Made Room" not in text(t):
                raise RuntimeError("not in " + t)
        if shown("#error"):
            raise RuntimeError("#error shows %r" % text("#error"))
    check("the form creates 'Web Made Room' in General; it is listed as mine and managed",
          create_room)

    def row(table, name):
        return "//table[@id='%s']//tr[td[1]='%s']" % (table, name)
    def row_text(table, name):
        return call("GET", s + "/element/%s/text" % xfind(row(table, name)))

    def edit_room():
        xclick(row("managed-rooms", "Web Made Room") + "//button[.='Edit']")
        until("the edit form", lambda: shown("#edit-room"))
        type_in("#edit-room-description", "changed in the browser")
        click("#edit-room-submit")
        until("the new description", lambda: "changed in the browser" in row_text("rooms", "Web Made Room"))
        until("the Disable button", lambda: text("#edit-room-toggle") == "Disable room")
        click("#edit-room-toggle")
        until("the room disabled", lambda: "disabled" in row_text("rooms", "Web Made Room"))
        until("the Enable button", lambda: text("#edit-room-toggle") == "Enable room")
        click("#edit-room-toggle")
        until("the room enabled", lambda: "enabled" in row_text("rooms", "Web Made Room"))
        click("#edit-room-close")
        if shown("#error"):
            raise RuntimeError("#error shows %r" % text("#error"))
    check("the room's manager edits its description, disables and enables it", edit_room)

    def files_panel():
        xclick(row("rooms", "Web Made Room") + "//button[.='Files']")
        until("the files panel", lambda: shown("#files"))
        # A list, or the server's refusal in words (the file endpoints may answer 501).
        got = until("a file list or an error", lambda: (shown("#error") and "error: " + text("#error"))
                    or ("Loading" not in text("#files-list") and "list: " + text("#files-list")))
        print("  files: " + got.replace("\n", " | "))
        click("#files-close")
    check("the files panel shows the room's files or the server's error", files_panel)

    def reload_keeps_session():
        call("POST", s + "/refresh", {})
        until("#me after a reload", lambda: "alice" in text("#me").lower())
        until("the room after a reload", lambda: "Web Made Room" in text("#managed-rooms"))
    check("a reload keeps the session (token in sessionStorage)", reload_keeps_session)

    def sign_out():
        click("#logout")
        until("the sign-in form", lambda: shown("#login") and not shown("#app"))
    check("sign out returns to the sign-in form", sign_out)

    def administrator():
        type_in("#login-user", "admin@example.test")
        type_in("#login-password", "admin-secret-1")
        click("#login-submit")
        until("the categories table", lambda: shown("#categories") and "General" in text("#categories"))
        until("alice in the users table", lambda: "sip:alice@example.test" in text("#users"))
        type_in("#cat-name", "Web Category")
        type_in("#cat-creators", "*@example.test")
        click("#cat-new")
        until("the new category", lambda: "Web Category" in text("#categories"))
        until("the new category to create rooms in",
              lambda: find('#new-room-category option[value="Web Category"]'))
        if shown("#error"):
            raise RuntimeError("#error shows %r" % text("#error"))
        click("#logout")
    check("an administrator sees categories and users and creates a category", administrator)
finally:
    try:
        call("DELETE", s)
    except Exception:
        pass
PY
echo "  python3 exit $?"
sed 's/^/  /' "$dir/browser.out" | grep -v '^  \(ok\|FAILED\):'
while IFS= read -r line; do
  case "$line" in
    "ok: "*) ok "${line#ok: }" ;;
    "FAILED: "*) bad "${line#FAILED: }" ;;
  esac
done < "$dir/browser.out"
grep -q '^\(ok\|FAILED\): ' "$dir/browser.out" || \
  bad "the browser part did not run through (chromedriver: $(tail -2 "$dir/chromedriver.log"))"

# The room made in the page is a room like any other for SIP clients. (pchat's commands split
# on blanks, so it joins the room by the ma-chan:// URI that chansrch answered.)
out=$(timeout 15 "$build/bin/pchat" -s "127.0.0.1:$sip" -u alice@example.test -p alice-secret-1 \
  rooms Web 2>&1)
uri=$(printf '%s\n' "$out" | grep "^room Web Made Room " | grep -o 'ma-chan://[^ ]*' | head -1)
if [ -n "$uri" ]; then
  ok "a SIP client finds 'Web Made Room' (chansrch)"
else
  bad "chansrch 'Web': $out"
fi
out=$(timeout 15 "$build/bin/pchat" -s "127.0.0.1:$sip" -u alice@example.test -p alice-secret-1 \
  join "${uri:-Web Made Room}" 2>&1); rc=$?
if [ $rc -eq 0 ] && printf '%s\n' "$out" | grep -q "^joined Web Made Room "; then
  ok "a SIP client joins 'Web Made Room'"
else
  bad "join: exit $rc: $out"
fi
echo "pchat-summary: $pass passed, $fail failed"
[ $fail -eq 0 ]
