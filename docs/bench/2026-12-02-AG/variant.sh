#!/bin/bash
# variant.sh NAME: prints the pgbench script NAME. floor and full are files here; the others
# are full.sql with one change each:
#   noevent   without the event row
#   noout     without the outbox row (the message row is the statement's last part)
#   smallpay  the outbox row with a 1-byte payload
#   noserial  the outbox row in outbox2, keyed by (conversation, seq) instead of a sequence
#   pipe8     eight sends (eight conversations) in one transaction, one statement each, pipelined:
#             the post batcher's batch of eight (section AH; run it with CLIENTS=1 at rate 125)
#   set8      the same eight sends as one statement over the eight state rows (section AH)
cd "$(dirname "$0")"
case $1 in
floor | full) cat "$1.sql" ;;
noevent) sed '/^), event AS/,/FROM state$/{/^), message AS/!d}' full.sql ;;
noout) sed -n '1,/^), message AS/p' full.sql | sed '$d'
	echo ')'
	sed -n '/^ INSERT INTO messages/,/FROM state$/p' full.sql | sed '1s/^ //; $s/$/;/' ;;
smallpay) sed "s/convert_to(repeat('x', 260), 'UTF8')/'\\\\\\\\x00'::bytea/" full.sql ;;
noserial) sed 's/INSERT INTO outbox (/INSERT INTO outbox2 (/; s/RETURNING id;/RETURNING seq;/' full.sql ;;
pipe8) echo '\set n random(1, 93)'; echo '\startpipeline'; echo 'BEGIN;'
	for i in 0 1 2 3 4 5 6 7; do sed 1d full.sql | sed "s/n = :n)/n = :n + $i)/"; done
	echo 'COMMIT;'; echo '\endpipeline' ;;
set8) echo '\set n random(1, 93)'
	sed 1d full.sql | sed 's/WHERE n = :n)/WHERE n BETWEEN :n AND :n + 7)/; s/WHERE id = (SELECT id FROM c)/WHERE id IN (SELECT id FROM c)/' ;;
*) echo "variant.sh: unknown script $1 (floor, full, noevent, noout, smallpay, noserial, pipe8, set8)" >&2; exit 2 ;;
esac
