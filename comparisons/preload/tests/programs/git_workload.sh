#!/usr/bin/env bash
# A git session on a repository it creates in $1 (empty directory): 40 commits, branches, a
# merge, gc, fsck, log, blame, grep, archive. Dates, names and config are fixed, so the
# output (commit ids included) is the same on every run. Every git process (and this shell)
# runs under whatever LD_PRELOAD the caller set.
set -euo pipefail
dir=$1
export HOME=$dir GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null LC_ALL=C TZ=UTC
export GIT_AUTHOR_NAME=Ada GIT_AUTHOR_EMAIL=ada@example.org GIT_COMMITTER_NAME=Ada
export GIT_COMMITTER_EMAIL=ada@example.org
cd "$dir"
git init -q -b main repo
cd repo
git config pack.threads 1
git config gc.auto 0
commit() { # commit N MESSAGE
    export GIT_AUTHOR_DATE="2020-01-01T00:00:$(printf %02d "$(($1 % 60))")Z"
    export GIT_COMMITTER_DATE=$GIT_AUTHOR_DATE
    git add -A
    git commit -q -m "$2"
}
for i in $(seq 1 30); do
    seq "$i" "$((i * 50))" > "numbers-$((i % 7)).txt"
    printf 'line %s\n' $(seq 1 "$((i * 3))") > "notes-$((i % 4)).md"
    mkdir -p "dir$((i % 3))"
    seq "$((i * 20))" | sed "s/.*/row $i/" > "dir$((i % 3))/rows.txt"
    commit "$i" "commit $i"
done
git checkout -q -b feature HEAD~10
for i in $(seq 31 40); do
    printf 'feature %s\n' $(seq 1 "$i") > feature.txt
    commit "$i" "feature $i"
done
git checkout -q main
export GIT_AUTHOR_DATE=2020-01-02T00:00:00Z GIT_COMMITTER_DATE=2020-01-02T00:00:00Z
git merge -q --no-ff -m "merge feature" feature
git tag -a v1 -m "version one"
git gc -q
git fsck --full --strict
echo "== log"
git log --graph --format='%h %an %ad %s' --date=iso --all | sed -n 1,60p
echo "== stat"
git log --stat --format='%H' -5
echo "== diff"
git diff --stat HEAD~12 HEAD
git diff HEAD~3 HEAD -- numbers-2.txt | sed -n 1,40p
echo "== blame"
git blame -s notes-1.md | sed -n 1,20p
echo "== grep"
git grep -c row
echo "== objects"
git rev-list --all --objects | wc -l
git count-objects -v | grep -E '^(count|in-pack)'
git archive --format=tar v1 | sha256sum
git cat-file -p v1
