#!/usr/bin/env bash
# SIP over TLS (issue 4 item 1): a node with a certificate serves REGISTER over TLS beside
# TCP, a client that verifies the certificate signs in, plain text on the TLS port is
# refused, and a wrong certificate path stops the node with a line naming the option.
set -u
cd "$(dirname "$0")/../.."
build=${PCHAT_BUILD:-build}
pass=0 fail=0
ok() { echo "ok: $1"; pass=$((pass + 1)); }
bad() { echo "FAILED: $1"; fail=$((fail + 1)); }
dir=$(mktemp -d /tmp/pchat-tls-XXXXXX)
pid=
trap '[ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$dir"' EXIT
base=$(( 30000 + ($$ % 50) * 50 ))
tcp=$base tls=$((base + 1)) cl=$((base + 2))

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "$dir/key.pem" -out "$dir/cert.pem" \
  -subj "/CN=pchat-node1" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null
cat > "$dir/node.conf" <<CONF
[node]
data_dir = $dir/data
[sip]
tcp_port = $tcp
tls_port = $tls
tls_cert = $dir/cert.pem
tls_key = $dir/key.pem
[cluster]
listen = 127.0.0.1:$cl
[web]
port = $((base + 3))
https_port = $((base + 4))
tls_cert = $dir/cert.pem
tls_key = $dir/key.pem
[seed]
demo = yes
CONF
"$build/bin/pchatd" -c "$dir/node.conf" > "$dir/log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do grep -q "seed: demo" "$dir/log" && break; sleep 0.1; done
if grep -q "listening on 127.0.0.1:$tls (TLS)" "$dir/log"; then ok "TLS listener beside TCP"; else
  bad "no TLS listener: $(tail -3 "$dir/log")"; fi

out=$(python3 - "$tls" "$dir/cert.pem" <<'PY'
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        msg = ("REGISTER sip:example.test SIP/2.0\r\n"
               "Via: SIP/2.0/TLS 127.0.0.1:9;branch=z9hG4bKtls1\r\n"
               "From: <sip:alice@example.test>;tag=t1\r\nTo: <sip:alice@example.test>\r\n"
               "Call-ID: tls-1\r\nCSeq: 1 REGISTER\r\n"
               "Contact: <sip:127.0.0.1:9;transport=tls>\r\nContent-Length: 0\r\n\r\n")
        s.sendall(msg.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        print(s.version(), data.decode(errors="replace").split("\r\n")[0])
        print("supported" if b"Supported: msrtc-event-categories" in data else "no-supported")
PY
)
echo "  $out" | head -2
if echo "$out" | grep -q "TLSv1.[23] SIP/2.0 200" && echo "$out" | grep -q "^supported"; then
  ok "a verifying TLS client signs in (REGISTER 200 with the headers SIPE needs)"
else
  bad "TLS REGISTER: $out"
fi

python3 - "$tls" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"REGISTER sip:example.test SIP/2.0\r\nContent-Length: 0\r\n\r\n")
try:
    while s.recv(4096):
        pass
except OSError:
    pass
PY
sleep 0.2
if grep -q "TLS handshake failed" "$dir/log" && kill -0 $pid 2>/dev/null; then
  ok "plain text on the TLS port is refused and logged; the node goes on"
else
  bad "plain text on the TLS port: $(tail -2 "$dir/log")"
fi
# HTTPS (OpenSSL in front of the HTTP server): a verifying client, a JSON answer, a refused
# sign-in, and a 1 MB body through the TLS bridge.
https=https://127.0.0.1:$((base + 4))
if out=$(curl -sS --cacert "$dir/cert.pem" "$https/healthz" 2>&1) && [[ "$out" == *'"ok":true'* ]]; then
  ok "HTTPS with the node's certificate answers /healthz"
else
  bad "HTTPS /healthz: $out"
fi
head -c 1048000 /dev/zero | tr '\0' 'a' > "$dir/big.json.part"
{ printf '{"user":"nobody@example.test","password":"'; cat "$dir/big.json.part"; printf '"}'; } > "$dir/big.json"
code=$(curl -sS -o "$dir/https.out" -w '%{http_code}' --cacert "$dir/cert.pem" \
  -H 'Content-Type: application/json' --data-binary @"$dir/big.json" "$https/api/login" 2>&1)
if [ "$code" = 413 ] || [ "$code" = 400 ]; then
  ok "a 1 MB body through HTTPS gets a JSON refusal ($code: $(cat "$dir/https.out"))"
else
  bad "1 MB body through HTTPS: $code $(cat "$dir/https.out" 2>/dev/null)"
fi
if out=$(curl -sS --cacert "$dir/cert.pem" -X POST "$https/api/admin" -d '{"op":"room.list"}' 2>&1) &&
   [[ "$out" == *'sign in first'* ]]; then
  ok "the admin API over HTTPS refuses a request without credentials"
else
  bad "HTTPS admin without credentials: $out"
fi
kill $pid; wait $pid 2>/dev/null; pid=

sed -i "s|^tls_cert = .*|tls_cert = $dir/missing.pem|" "$dir/node.conf"
out=$(timeout 20 "$build/bin/pchatd" -c "$dir/node.conf" 2>&1); rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [[ "$out" == *"[sip] tls_cert = $dir/missing.pem"* ]]; then
  ok "a missing certificate stops the node with a line naming [sip] tls_cert"
else
  bad "missing certificate: exit $rc: $(printf '%s\n' "$out" | grep -v INFO | tail -2)"
fi
echo "pchat-summary: $pass passed, $fail failed"
[ $fail -eq 0 ]
