#!/usr/bin/env bash
# Start or stop two independent Dovecot instances — "source" and "target" — on 127.0.0.1,
# each in its own directory with its own ports, users, master user and TLS certificate.
#
#   scripts/dovecot-pair.sh install          apt-get the Debian packages if dovecot is missing
#   scripts/dovecot-pair.sh start DIR        create DIR/{source,target}, start both, write DIR/env
#   scripts/dovecot-pair.sh stop DIR         stop both instances started in DIR
#   scripts/dovecot-pair.sh reset-target DIR stop the target, delete all its mail, start it again
#
# Ports come from the environment (SOURCE_IMAP_PORT, SOURCE_IMAPS_PORT, SOURCE_POP3_PORT,
# SOURCE_POP3S_PORT, SOURCE_SIEVE_PORT and the same with TARGET_), defaulting to 1xxxx for the
# source and 2xxxx for the target. DIR/env records what was used, in shell syntax.
# TARGET_IMAP_CAPABILITY, when set, replaces the target's post-login capability list (to test
# servers without LITERAL+ or MULTIAPPEND).
#
# The two instances differ on purpose, like two real providers do:
#   source: Maildir with LAYOUT=fs, hierarchy separator "/", Italian folder names, no SPECIAL-USE
#   target: Maildir++ (separator "."), English special-use folders created on login, a quota
#           (count backend) of 1 GiB per user, 2 MiB for user "tiny" whose messages may not exceed 200 KiB.
# Sieve: both offer ManageSieve; the target leaves out the "regex" extension, so a test can see it
# refuse a script the source accepted.
# PAIR_ACL=1 loads the acl plugin (vfile) on both, so a test can take rights away from a folder
# (owners keep every right unless a dovecot-acl file says otherwise), and offers the IMAP ACL
# extension (MYRIGHTS).
# PAIR_USERS (space-separated) replaces the user list (the benchmark uses b01 b02 …);
# PAIR_SOURCE_USERS / PAIR_TARGET_USERS replace it on one side only (a renamed domain has
# different user names on each side).
# PAIR_TARGET_QUOTAS (space-separated user=size, e.g. "gino@cultura.gov.it=300k") gives those
# target users their own storage quota.
# PAIR_TARGET_MAX_CONNECTIONS limits the IMAP sessions a target user may have at once (default
# 100), so a test can have the target refuse a further connection.
# PAIR_LISTEN replaces the listening address 127.0.0.1 (the benchmark's WAN scenario listens on
# an address inside a network namespace it made).
# Users: alice bob carol dave erin frank tiny, password "<user>-pw"; master user "admin",
# password "admin-secret" (log in as "alice*admin" or SASL PLAIN authzid=alice authcid=admin).
set -euo pipefail

die() { echo "dovecot-pair: $*" >&2; exit 1; }

LISTEN=${PAIR_LISTEN:-127.0.0.1}

read -r -a USERS <<<"${PAIR_USERS:-alice bob carol dave erin frank tiny}"

install_packages() {
  if command -v dovecot >/dev/null 2>&1 && [ -x /usr/lib/dovecot/imap ] && [ -x /usr/lib/dovecot/pop3 ] \
     && [ -x /usr/lib/dovecot/managesieve ] && command -v openssl >/dev/null 2>&1; then
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "dovecot is not installed; run as root or: sudo apt-get install dovecot-imapd dovecot-pop3d dovecot-managesieved dovecot-sieve dovecot-lmtpd openssl"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps the package from starting the system-wide dovecot service.
  apt-get install -y -qq --no-install-recommends dovecot-core dovecot-imapd dovecot-pop3d \
    dovecot-managesieved dovecot-sieve dovecot-lmtpd openssl ca-certificates >/dev/null
  # The system instance is not used; stop it if the package started one anyway.
  (command -v service >/dev/null && service dovecot stop >/dev/null 2>&1) || true
}

make_tls() {
  local dir=$1
  mkdir -p "$dir"
  [ -f "$dir/server.crt" ] && return 0
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=trasloco test CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >"$dir/ext.cnf"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 3650 -extfile "$dir/ext.cnf" -out "$dir/server.crt" 2>/dev/null
  chmod 644 "$dir"/*.crt
  chmod 640 "$dir"/*.key
}

# Mail processes must not run as root: use a dedicated user when we are root, else ourselves.
mail_identity() {
  if [ "$(id -u)" = 0 ]; then
    id trasloco-mail >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin trasloco-mail
    MAIL_UID=$(id -u trasloco-mail); MAIL_GID=$(id -g trasloco-mail)
    INTERNAL_USER=dovecot; LOGIN_USER=dovenull
  else
    MAIL_UID=$(id -u); MAIL_GID=$(id -g)
    INTERNAL_USER=$(id -un); LOGIN_USER=$(id -un)
  fi
}

write_instance() {
  local side=$1 dir=$2 imap=$3 imaps=$4 pop3=$5 pop3s=$6 sieve=$7
  mkdir -p "$dir"/{run,state,log,home,sieve}
  local users="$dir/users" masters="$dir/masters"
  : >"$users"
  local side_users=("${USERS[@]}")
  if [ "$side" = source ] && [ -n "${PAIR_SOURCE_USERS:-}" ]; then
    read -r -a side_users <<<"$PAIR_SOURCE_USERS"
  elif [ "$side" = target ] && [ -n "${PAIR_TARGET_USERS:-}" ]; then
    read -r -a side_users <<<"$PAIR_TARGET_USERS"
  fi
  for u in "${side_users[@]}"; do
    local extra="" q
    if [ "$side" = target ] && [ "$u" = tiny ]; then
      extra="userdb_quota_rule=*:storage=2M userdb_quota_max_mail_size=200k"
    fi
    if [ "$side" = target ]; then
      for q in ${PAIR_TARGET_QUOTAS:-}; do
        [ "${q%%=*}" = "$u" ] && extra="userdb_quota_rule=*:storage=${q#*=}"
      done
    fi
    echo "$u:{PLAIN}$u-pw:$MAIL_UID:$MAIL_GID::$dir/home/$u::$extra" >>"$users"
  done
  echo "admin:{PLAIN}admin-secret" >"$masters"

  local mail_location namespace quota_plugins="" quota_block="" imap_plugins="" acl_plugin="" acl_block=""
  # ACLs only on request: with the acl plugin loaded, Dovecot checks a master-user session
  # against the master's rights, so master logins would no longer see the user's folders.
  if [ -n "${PAIR_ACL:-}" ]; then
    acl_plugin="acl"
    acl_block="  acl = vfile"
  fi
  local imap_acl=""
  [ -n "${PAIR_ACL:-}" ] && imap_acl="imap_acl"
  if [ "$side" = source ]; then
    mail_location="maildir:~/Maildir:LAYOUT=fs"
    namespace='namespace inbox {
  inbox = yes
  separator = /
}'
  else
    mail_location="maildir:~/Maildir"
    namespace='namespace inbox {
  inbox = yes
  separator = .
  mailbox Sent {
    special_use = \Sent
    auto = subscribe
  }
  mailbox Drafts {
    special_use = \Drafts
    auto = subscribe
  }
  mailbox Trash {
    special_use = \Trash
    auto = subscribe
  }
  mailbox Junk {
    special_use = \Junk
    auto = subscribe
  }
  mailbox Archive {
    special_use = \Archive
    auto = subscribe
  }
}'
    quota_plugins="quota"
    imap_plugins="imap_quota"
    quota_block='  quota = count:User quota
  quota_rule = *:storage=1G
  quota_vsizes = yes
  quota_max_mail_size = 64M'
  fi

  cat >"$dir/dovecot.conf" <<EOF
# Generated by scripts/dovecot-pair.sh for the $side side of a trasloco test pair.
instance_name = trasloco-$side-$(basename "$(dirname "$dir")")
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/log/dovecot.log
info_log_path = $dir/log/dovecot.log
protocols = imap pop3 sieve
listen = $LISTEN
default_internal_user = $INTERNAL_USER
default_login_user = $LOGIN_USER
first_valid_uid = 1
ssl = yes
ssl_cert = <$dir/../tls/server.crt
ssl_key = <$dir/../tls/server.key
disable_plaintext_auth = no
auth_mechanisms = plain login$( [ "$side" = target ] && [ -n "${PAIR_TARGET_OAUTH:-}" ] && echo " xoauth2 oauthbearer" )
auth_master_user_separator = *
mail_location = $mail_location
mail_plugins = \$mail_plugins $acl_plugin $quota_plugins
mail_max_userip_connections = $( [ "$side" = target ] && echo "${PAIR_TARGET_MAX_CONNECTIONS:-100}" || echo 100 )
$( [ "$side" = source ] && echo "mail_max_keyword_length = 200" )
$( [ "$side" = target ] && [ -n "${TARGET_IMAP_CAPABILITY:-}" ] && echo "imap_capability = $TARGET_IMAP_CAPABILITY" )
imap_max_line_length = 1M
$namespace
$( [ "$side" = target ] && [ -n "${PAIR_TARGET_OAUTH:-}" ] && cat <<OAUTH
# OAuth2 bearer logins (XOAUTH2, OAUTHBEARER): JWTs signed with the pair's key (oauth/key),
# validated locally. An app token (appid = trasloco-test-app, scope mail.migrate) opens any
# mailbox, as an Exchange Online app with FullAccess does.
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $dir/oauth2.conf.ext
}
OAUTH
)
passdb {
  driver = passwd-file
  args = $masters
  master = yes
  pass = yes
}
passdb {
  driver = passwd-file
  args = $users
}
userdb {
  driver = passwd-file
  args = $users
}
plugin {
$acl_block
$quota_block
  sieve = file:~/sieve;active=~/.dovecot.sieve
$( [ "$side" = target ] && echo "  sieve_extensions = -regex" )
}
protocol imap {
  mail_plugins = \$mail_plugins $imap_plugins $imap_acl
}
protocol sieve {
}
# Local delivery (dovecot-lda) runs the users' active Sieve scripts; what they send goes to the
# pair's sendmail sink (outbox/), never off the machine.
protocol lda {
  mail_plugins = \$mail_plugins sieve
}
sendmail_path = $dir/../sendmail-sink
postmaster_address = postmaster@$side.invalid
hostname = $side.trasloco.invalid
service imap-login {
  inet_listener imap {
    address = $LISTEN
    port = $imap
  }
  inet_listener imaps {
    address = $LISTEN
    port = $imaps
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    address = $LISTEN
    port = $pop3
  }
  inet_listener pop3s {
    address = $LISTEN
    port = $pop3s
    ssl = yes
  }
}
service managesieve-login {
  inet_listener sieve {
    address = $LISTEN
    port = $sieve
  }
}
service anvil {
  chroot =
}
service stats {
  unix_listener stats-writer {
    mode = 0666
  }
}
EOF
  if [ "$side" = target ] && [ -n "${PAIR_TARGET_OAUTH:-}" ]; then
    mkdir -p "$dir/../oauth/keys/default/HS256"
    head -c 32 /dev/urandom | base64 >"$dir/../oauth/key"
    cp "$dir/../oauth/key" "$dir/../oauth/keys/default/HS256/default"
    chmod -R a+rX "$dir/../oauth"
    cat >"$dir/oauth2.conf.ext" <<OAUTH
introspection_mode = local
local_validation_key_dict = fs:posix:prefix=$dir/../oauth/keys/
username_attribute = appid
username_format = trasloco-test-app
scope = mail.migrate
OAUTH
  fi
  chown -R "$MAIL_UID:$MAIL_GID" "$dir/home" "$dir/sieve"
  chmod 755 "$dir"
}

wait_port() {
  local port=$1 i
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/$LISTEN/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

start() {
  local top=$1
  command -v dovecot >/dev/null 2>&1 || install_packages
  mkdir -p "$top"
  top=$(cd "$top" && pwd)
  chmod 755 "$top"
  mail_identity
  make_tls "$top/tls"
  : "${SOURCE_IMAP_PORT:=11143}" "${SOURCE_IMAPS_PORT:=11993}" "${SOURCE_POP3_PORT:=11110}"
  : "${SOURCE_POP3S_PORT:=11995}" "${SOURCE_SIEVE_PORT:=14190}"
  : "${TARGET_IMAP_PORT:=21143}" "${TARGET_IMAPS_PORT:=21993}" "${TARGET_POP3_PORT:=21110}"
  : "${TARGET_POP3S_PORT:=21995}" "${TARGET_SIEVE_PORT:=24190}"
  # A stand-in for the MTA: each message Pigeonhole sends (a redirect, an automatic reply, a
  # rejection) becomes a file in outbox/, its first line the sendmail arguments.
  mkdir -p "$top/outbox"
  chmod 1777 "$top/outbox"
  cat >"$top/sendmail-sink" <<'SINK'
#!/bin/sh
out="$(dirname "$0")/outbox/$(date +%s%N).$$"
{ printf 'X-Sink-Args: %s\n' "$*"; cat; } >"$out.tmp" && mv "$out.tmp" "$out.eml"
SINK
  chmod 755 "$top/sendmail-sink"
  write_instance source "$top/source" "$SOURCE_IMAP_PORT" "$SOURCE_IMAPS_PORT" "$SOURCE_POP3_PORT" "$SOURCE_POP3S_PORT" "$SOURCE_SIEVE_PORT"
  write_instance target "$top/target" "$TARGET_IMAP_PORT" "$TARGET_IMAPS_PORT" "$TARGET_POP3_PORT" "$TARGET_POP3S_PORT" "$TARGET_SIEVE_PORT"
  local side
  for side in source target; do
    # The daemon must not keep our stdout/stderr open: callers wait for them to close.
    dovecot -c "$top/$side/dovecot.conf" </dev/null >/dev/null 2>"$top/$side/log/start.err" \
      || die "the $side instance did not start: $(cat "$top/$side/log/start.err"); see also $top/$side/log/dovecot.log"
  done
  wait_port "$SOURCE_IMAP_PORT" || die "source IMAP port $SOURCE_IMAP_PORT never opened; see $top/source/log/dovecot.log"
  wait_port "$TARGET_IMAP_PORT" || die "target IMAP port $TARGET_IMAP_PORT never opened; see $top/target/log/dovecot.log"
  cat >"$top/env" <<EOF
PAIR_DIR=$top
CA_FILE=$top/tls/ca.crt
SOURCE_CONF=$top/source/dovecot.conf
TARGET_CONF=$top/target/dovecot.conf
SOURCE_IMAP_PORT=$SOURCE_IMAP_PORT
SOURCE_IMAPS_PORT=$SOURCE_IMAPS_PORT
SOURCE_POP3_PORT=$SOURCE_POP3_PORT
SOURCE_POP3S_PORT=$SOURCE_POP3S_PORT
SOURCE_SIEVE_PORT=$SOURCE_SIEVE_PORT
TARGET_IMAP_PORT=$TARGET_IMAP_PORT
TARGET_IMAPS_PORT=$TARGET_IMAPS_PORT
TARGET_POP3_PORT=$TARGET_POP3_PORT
TARGET_POP3S_PORT=$TARGET_POP3S_PORT
TARGET_SIEVE_PORT=$TARGET_SIEVE_PORT
OAUTH_KEY_FILE=$top/oauth/key
EOF
}

stop() {
  local top=$1 side
  for side in source target; do
    [ -f "$top/$side/dovecot.conf" ] || continue
    doveadm -c "$top/$side/dovecot.conf" stop >/dev/null 2>&1 || true
  done
  # doveadm stop returns before the master has exited; wait a little so ports are free again.
  for side in source target; do
    local pidfile="$top/$side/run/master.pid" i
    [ -f "$pidfile" ] || continue
    local pid; pid=$(cat "$pidfile" 2>/dev/null || true)
    for i in $(seq 1 50); do
      [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  done
}

# A fresh, empty target with the same configuration and ports: for benchmarks that measure
# every tool against the same starting point.
reset_target() {
  local top=$1 conf=$1/target/dovecot.conf
  [ -f "$conf" ] || die "no target instance in $top"
  mail_identity
  doveadm -c "$conf" stop >/dev/null 2>&1 || true
  local pidfile="$top/target/run/master.pid" pid i
  pid=$(cat "$pidfile" 2>/dev/null || true)
  for i in $(seq 1 100); do
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  local home
  for home in "$top"/target/home/*; do
    rm -rf "$home"
    mkdir -p "$home"
    chown "$MAIL_UID:$MAIL_GID" "$home"
  done
  local port
  port=$(awk '/inet_listener imap \{/{f=1} f&&/port =/{print $3; exit}' "$conf")
  dovecot -c "$conf" </dev/null >/dev/null 2>"$top/target/log/start.err" \
    || die "the target instance did not restart: $(cat "$top/target/log/start.err")"
  wait_port "$port" || die "target IMAP port $port never opened; see $top/target/log/dovecot.log"
}

case "${1:-}" in
  install) install_packages ;;
  start) [ -n "${2:-}" ] || die "usage: $0 start DIR"; start "$2" ;;
  stop) [ -n "${2:-}" ] || die "usage: $0 stop DIR"; stop "$2" ;;
  reset-target) [ -n "${2:-}" ] || die "usage: $0 reset-target DIR"; reset_target "$2" ;;
  *) die "usage: $0 install | start DIR | stop DIR | reset-target DIR" ;;
esac
