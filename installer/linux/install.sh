#!/usr/bin/env bash
# Install (or upgrade) the therapy console on a Linux treatment-room PC.
#
#   sudo ./install.sh [--prefix DIR] [--bundle DIR] [--add-user USER]...
#
#   --prefix DIR     install under DIR instead of / (a staging folder or a test); system changes
#                    (group, users, udev reload, desktop caches) are then only listed, not made
#   --bundle DIR     the PyInstaller one-folder bundle (default: ./bundle beside this script)
#   --add-user USER  add USER to the group "therapy-console" (serial-port access); repeatable
#
# What it puts where (PREFIX/…):
#   opt/therapy-console/             the bundle (program, Python, Qt) + uninstall.sh
#   usr/local/bin/therapy-console    a symlink to the program
#   usr/share/applications/therapy-console.desktop, usr/share/icons/hicolor/…/therapy-console.*
#   etc/udev/rules.d/70-therapy-console.rules   USB-serial adapters for the group
# It never touches the clinic's data (each OS user's ~/.local/share/therapy-console, the logs,
# a clinic server). Idempotent: running it again with the same bundle changes nothing.
set -euo pipefail

GROUP=therapy-console
HERE="$(cd "$(dirname "$0")" && pwd)"
PREFIX=/
BUNDLE="$HERE/bundle"
ADD_USERS=()

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "install.sh: error: $*" >&2; exit 2; }
say() { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="${2:?--prefix needs a folder}"; shift 2 ;;
        --bundle) BUNDLE="${2:?--bundle needs a folder}"; shift 2 ;;
        --add-user) ADD_USERS+=("${2:?--add-user needs a user name}"); shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

# files that ship beside this script: in the tarball, or in the repository's installer/
find_asset() {  # find_asset NAME → path
    local candidate
    for candidate in "$HERE/$1" "$HERE/icons/$1" "$HERE/../icons/$1"; do
        if [ -f "$candidate" ]; then echo "$candidate"; return 0; fi
    done
    die "cannot find $1 beside $0 (unpack the whole tarball)"
}

[ -d "$PREFIX" ] || die "--prefix $PREFIX is not a folder"
PREFIX="$(cd "$PREFIX" && pwd)"
SYSTEM=false
[ "$PREFIX" = "/" ] && SYSTEM=true
ROOT="${PREFIX%/}"  # "" for /, so "$ROOT/opt" is "/opt"
if $SYSTEM && [ "$(id -u)" -ne 0 ]; then
    die "installing to / needs root: run it with sudo (or give --prefix DIR)"
fi
[ -d "$BUNDLE" ] || die "there is no bundle folder $BUNDLE (build it: python installer/build.py)"
BUNDLE="$(cd "$BUNDLE" && pwd)"
[ -x "$BUNDLE/therapy-console" ] || die "$BUNDLE has no executable therapy-console: not a bundle"
for user in "${ADD_USERS[@]}"; do
    [[ "$user" =~ ^[a-z_][a-z0-9_.-]*[$]?$ ]] || die "--add-user '$user' is not a user name"
    if $SYSTEM; then id "$user" >/dev/null 2>&1 || die "there is no user '$user' on this PC"; fi
done

DESKTOP="$(find_asset therapy-console.desktop)"
RULES="$(find_asset 70-therapy-console.rules)"
SVG="$(find_asset therapy-console.svg)"
PNG="$(find_asset therapy-console.png)"
UNINSTALL="$(find_asset uninstall.sh)"
CHANGED_DESKTOP=false
CHANGED_RULES=false

# ---------------------------------------------------------------- the bundle in opt/
# The bundle's identity: every path with its content hash and link target, hashed.
fingerprint() {  # fingerprint DIR
    (
        cd "$1"
        find . -type f ! -name '.bundle-*' -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
        find . -type f -perm -u+x ! -name '.bundle-*' | LC_ALL=C sort | sed 's/^/executable /'
        find . -type l -printf '%p -> %l\n' | LC_ALL=C sort
    ) | sha256sum | cut -d' ' -f1
}

file_list() {  # file_list DIR → every file and link, relative, sorted
    (cd "$1" && find . -mindepth 1 \( -type f -o -type l \) ! -name '.bundle-*' | LC_ALL=C sort)
}

install_bundle() {
    local target="$ROOT/opt/therapy-console" want have foreign staging old
    want="$(fingerprint "$BUNDLE")"
    have="$(cat "$target/.bundle-fingerprint" 2>/dev/null || true)"
    if [ "$want" = "$have" ]; then
        say "unchanged: $target (same bundle)"
        return
    fi
    if [ -d "$target" ]; then
        # replacing the folder must not take anything the installer did not put there
        if [ -f "$target/.bundle-files" ]; then
            foreign="$(comm -13 <(cat "$target/.bundle-files" <(echo ./uninstall.sh) | LC_ALL=C sort) \
                <(file_list "$target"))"
        else
            foreign="(no list of installed files: not installed by this script)"
        fi
        if [ -n "$foreign" ]; then
            die "$target holds files this installer did not put there; move them elsewhere first:
$foreign"
        fi
    fi
    mkdir -p "$ROOT/opt"
    staging="$ROOT/opt/.therapy-console.new.$$"
    old="$ROOT/opt/.therapy-console.old.$$"
    rm -rf "$staging"
    cp -a "$BUNDLE/." "$staging/"
    file_list "$BUNDLE" > "$staging/.bundle-files"
    echo "$want" > "$staging/.bundle-fingerprint"
    chmod -R u+rwX,go+rX,go-w "$staging"
    if [ -d "$target" ]; then
        mv "$target" "$old"          # a running console keeps its open files until it exits
        mv "$staging" "$target"
        rm -rf "$old"
        say "replaced: $target"
    else
        mv "$staging" "$target"
        say "installed: $target"
    fi
}

# ---------------------------------------------------------------- single files
WROTE=false
install_file() {  # install_file SOURCE DEST MODE; sets WROTE=true when it wrote DEST
    local source="$1" dest="$2" mode="$3"
    WROTE=false
    if [ -f "$dest" ] && cmp -s "$source" "$dest" &&
        [ "$(stat -c %a "$dest")" = "$mode" ]; then
        say "unchanged: $dest"
        return
    fi
    mkdir -p "$(dirname "$dest")"
    install -m "$mode" "$source" "$dest.tmp.$$"
    mv -f "$dest.tmp.$$" "$dest"
    say "installed: $dest"
    WROTE=true
}

install_launcher() {
    local link="$ROOT/usr/local/bin/therapy-console"
    local target="../../../opt/therapy-console/therapy-console"
    if [ -L "$link" ] && [ "$(readlink "$link")" = "$target" ]; then
        say "unchanged: $link"
        return
    fi
    if [ -e "$link" ] || [ -L "$link" ]; then
        die "$link exists and is not this installer's launcher (a pip installation?); remove it first"
    fi
    mkdir -p "$(dirname "$link")"
    ln -s "$target" "$link"
    say "installed: $link -> $target"
}

# ---------------------------------------------------------------- system changes
system_step() {  # system_step DESCRIPTION COMMAND… : run it on /, list it under a prefix
    local what="$1"
    shift
    if $SYSTEM; then
        "$@"
        say "done: $what"
    else
        say "skipped (prefix is not /): $what: $*"
    fi
}

group_step() {
    if $SYSTEM && getent group "$GROUP" >/dev/null; then
        say "unchanged: group $GROUP exists"
        return
    fi
    system_step "create the group $GROUP" groupadd -f --system "$GROUP"
}

user_step() {  # user_step USER
    if $SYSTEM && id -nG "$1" | tr ' ' '\n' | grep -qx "$GROUP"; then
        say "unchanged: $1 is in the group $GROUP"
        return
    fi
    system_step "add $1 to the group $GROUP (takes effect at their next login)" \
        usermod -a -G "$GROUP" "$1"
}

refresh_step() {
    if $CHANGED_RULES; then
        if command -v udevadm >/dev/null; then
            system_step "reload the udev rules" \
                sh -c 'udevadm control --reload-rules && udevadm trigger --subsystem-match=tty'
        else
            say "no udevadm here: the rule applies after the next reboot"
        fi
    fi
    if $CHANGED_DESKTOP; then
        if command -v update-desktop-database >/dev/null; then
            system_step "refresh the desktop menu" update-desktop-database -q /usr/share/applications
        fi
        if command -v gtk-update-icon-cache >/dev/null; then
            system_step "refresh the icon cache" \
                gtk-update-icon-cache -q -t -f /usr/share/icons/hicolor
        fi
    fi
}

# ---------------------------------------------------------------- run
say "installing $("$BUNDLE/therapy-console" --version 2>/dev/null || echo 'the bundle') into $PREFIX"
install_bundle
install_file "$UNINSTALL" "$ROOT/opt/therapy-console/uninstall.sh" 755
install_launcher
install_file "$DESKTOP" "$ROOT/usr/share/applications/therapy-console.desktop" 644
if $WROTE; then CHANGED_DESKTOP=true; fi
install_file "$SVG" "$ROOT/usr/share/icons/hicolor/scalable/apps/therapy-console.svg" 644
if $WROTE; then CHANGED_DESKTOP=true; fi
install_file "$PNG" "$ROOT/usr/share/icons/hicolor/256x256/apps/therapy-console.png" 644
if $WROTE; then CHANGED_DESKTOP=true; fi
install_file "$RULES" "$ROOT/etc/udev/rules.d/70-therapy-console.rules" 644
if $WROTE; then CHANGED_RULES=true; fi
group_step
for user in "${ADD_USERS[@]}"; do user_step "$user"; done
refresh_step
say "ready: start it from the desktop menu (Therapy Console) or with: therapy-console"
