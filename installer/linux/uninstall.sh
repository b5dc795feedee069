#!/usr/bin/env bash
# Remove the therapy console's program files; keep the clinic's data.
#
#   sudo /opt/therapy-console/uninstall.sh [--prefix DIR]
#
# Removes what install.sh put there: the files of the bundle in opt/therapy-console (by its list
# of installed files), the launcher symlink, the desktop entry, the icons and the udev rule.
# Keeps: the clinic's data, which the installer never put there (each OS user's
# ~/.local/share/therapy-console: database, signing key, witness, workstation id; the logs in
# ~/.local/state/therapy-console; backups; a clinic server), anything else found in
# opt/therapy-console, and the group "therapy-console" (files may still belong to it; remove it
# with `groupdel therapy-console` when sure).
set -euo pipefail

PREFIX=/
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "uninstall.sh: error: $*" >&2; exit 2; }
say() { echo "uninstall.sh: $*"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="${2:?--prefix needs a folder}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
[ -d "$PREFIX" ] || die "--prefix $PREFIX is not a folder"
PREFIX="$(cd "$PREFIX" && pwd)"
SYSTEM=false
[ "$PREFIX" = "/" ] && SYSTEM=true
ROOT="${PREFIX%/}"
if $SYSTEM && [ "$(id -u)" -ne 0 ]; then
    die "uninstalling from / needs root: run it with sudo (or give --prefix DIR)"
fi

TARGET="$ROOT/opt/therapy-console"
remove() {  # remove PATH: a file or symlink the installer made
    if [ -e "$1" ] || [ -L "$1" ]; then
        rm -f "$1"
        say "removed: $1"
    fi
}

if [ -d "$TARGET" ] && [ ! -f "$TARGET/.bundle-files" ]; then
    [ ! -e "$TARGET/therapy-console" ] ||
        die "$TARGET has no list of installed files: it was not installed by install.sh; nothing removed"
    say "kept: $TARGET holds no program files, only files the installer did not put there"
elif [ -d "$TARGET" ]; then
    # only the files the installer listed, then the folders left empty
    while IFS= read -r path; do
        case "$path" in
            ./*) ;;
            *) die "unexpected entry '$path' in $TARGET/.bundle-files; nothing more removed" ;;
        esac
        case "$path" in *..*) die "unexpected entry '$path' in $TARGET/.bundle-files" ;; esac
        rm -f "$TARGET/${path#./}"
    done < "$TARGET/.bundle-files"
    rm -f "$TARGET/uninstall.sh" "$TARGET/.bundle-files" "$TARGET/.bundle-fingerprint"
    find "$TARGET" -depth -type d -empty -delete
    if [ -d "$TARGET" ]; then
        say "kept: $TARGET holds files the installer did not put there:"
        (cd "$TARGET" && find . -type f | sed 's/^/    /')
    else
        say "removed: $TARGET"
    fi
else
    say "nothing at $TARGET"
fi

link="$ROOT/usr/local/bin/therapy-console"
if [ -L "$link" ] && [ "$(readlink "$link")" = "../../../opt/therapy-console/therapy-console" ]; then
    remove "$link"
elif [ -e "$link" ]; then
    say "kept: $link is not this installer's launcher"
fi
remove "$ROOT/usr/share/applications/therapy-console.desktop"
remove "$ROOT/usr/share/icons/hicolor/scalable/apps/therapy-console.svg"
remove "$ROOT/usr/share/icons/hicolor/256x256/apps/therapy-console.png"
rules="$ROOT/etc/udev/rules.d/70-therapy-console.rules"
if [ -e "$rules" ]; then
    remove "$rules"
    if $SYSTEM && command -v udevadm >/dev/null; then
        udevadm control --reload-rules
        say "done: reload the udev rules"
    fi
fi
say "kept: the clinic's data (each user's ~/.local/share/therapy-console and logs), the group therapy-console"
