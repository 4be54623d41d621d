#!/usr/bin/env bash
# tagcast walk-through: accounts, tags, two pushes, statistics and a delivery trace, with curl.
# README.md shows this file verbatim; crates/tagcast/tests/integration/walkthrough.rs runs it
# twice in a row against one server. Run it (`bash docs/walkthrough.sh`) or paste it into a
# shell, as often as you like. It reads these variables; the defaults are those of the
# development app that `tagcast serve` runs, and prints, when it has no config file:
#   TAGCAST_URL       default http://127.0.0.1:8080
#   TAGCAST_SDKAPPID  default 1400000000 (the banner's "sdkappid")
#   TAGCAST_ADMIN     default administrator (the banner's "admin")
#   TAGCAST_USERSIG   the admin's UserSig (the banner's "usersig"); when unset, one is signed by
#                     `$TAGCAST_BIN usersig` (default: `tagcast` on PATH, else target/release/tagcast)
#                     with TAGCAST_KEY (the banner's "secret key"; default: the key kept in
#                     ${TAGCAST_DATA_DIR:-./tagcast-data}/dev-app.toml).

URL=${TAGCAST_URL:-http://127.0.0.1:8080}/v4
SDKAPPID=${TAGCAST_SDKAPPID:-1400000000}
ADMIN=${TAGCAST_ADMIN:-administrator}
SIG=${TAGCAST_USERSIG:-}
if [ -z "$SIG" ]; then
  KEY=${TAGCAST_KEY:-$(sed -n 's/^secret_key = "\(.*\)"$/\1/p' "${TAGCAST_DATA_DIR:-./tagcast-data}/dev-app.toml")}
  SIG=$("${TAGCAST_BIN:-$(command -v tagcast || echo target/release/tagcast)}" usersig --sdkappid "$SDKAPPID" --key "$KEY" --identifier "$ADMIN")
fi
Q="sdkappid=$SDKAPPID&identifier=$ADMIN&usersig=$SIG&random=$RANDOM&contenttype=json"

# Accounts must exist (imported, or logged in) before they can be tagged. Importing twice is harmless.
curl -s -w '\n' -X POST "$URL/im_open_login_svc/multiaccount_import?$Q" -d '{"Accounts":["xiaoming","xiaohong"]}'
# {"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"FailAccounts":[]}

# Mary was never imported: she is reported in ErrorList and the others are tagged.
curl -s -w '\n' -X POST "$URL/timpush/add_tag?$Q" -d '{"UserTags":[
  {"To_Account":"xiaoming","Tags":["GoldMember"]},
  {"To_Account":"xiaohong","Tags":["GoldMember","WeekPassUser"]},
  {"To_Account":"Mary","Tags":["GoldMember"]}]}'
# {"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"ErrorList":[{"To_Account":"Mary","ErrorCode":70107,"ErrorInfo":"account 'Mary' does not exist"}]}

curl -s -w '\n' -X POST "$URL/timpush/get_tag?$Q" -d '{"To_Account":["xiaoming","xiaohong"]}'
# {"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"UserTags":[{"To_Account":"xiaoming","Tags":["GoldMember"]},{"To_Account":"xiaohong","Tags":["GoldMember","WeekPassUser"]}]}

# How many accounts the first push will reach, without pushing: GoldMembers without WeekPassUser.
curl -s -w '\n' -X POST "$URL/tagcast/audience_count?$Q" -d '{"Condition":{"TagsOr":["GoldMember"],"TagsNot":["WeekPassUser"]}}'
# {"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"Count":1}

# A repeated MsgRandom returns the first push's TaskId and pushes nothing (Tencent's retry
# rule), so every push takes a fresh one. The development app takes pushes 1 s apart (90024).
sleep 1
PUSH1=$(curl -s -X POST "$URL/timpush/push?$Q" -d '{
  "MsgRandom": '$((RANDOM * 32768 + RANDOM))',
  "Condition": {"TagsOr": ["GoldMember"], "TagsNot": ["WeekPassUser"]},
  "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hello"}}],
  "OfflinePushInfo": {"Title": "News", "Desc": "hello"}}')
echo "$PUSH1"
# {"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"TaskId":"6b0f36d2_53724e00_1_3aae096d"}

# tagcast's Audience extension: GoldMembers, or anyone without WeekPassUser (docs/extensions.md).
sleep 1
PUSH2=$(curl -s -X POST "$URL/timpush/push?$Q" -d '{
  "MsgRandom": '$((RANDOM * 32768 + RANDOM))',
  "Audience": {"Or": [{"Tag": "GoldMember"}, {"Not": {"Tag": "WeekPassUser"}}]},
  "MsgBody": [{"MsgType": "TIMTextElem", "MsgContent": {"Text": "for you"}}]}')
echo "$PUSH2"
# {"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"TaskId":"6b0f36d3_53724e00_2_2908f628"}

TASK1=$(echo "$PUSH1" | sed -n 's/.*"TaskId":"\([^"]*\)".*/\1/p')
TASK2=$(echo "$PUSH2" | sed -n 's/.*"TaskId":"\([^"]*\)".*/\1/p')

# Audience and deliveries of both pushes (StartTime and EndTime are unix seconds, at most 7 days apart).
NOW=$(date +%s)
curl -s -w '\n' -X POST "$URL/timpush/all_member_push_statistics?$Q" \
  -d '{"StartTime": '$((NOW - 3600))', "EndTime": '$NOW', "TaskID": ["'$TASK1'", "'$TASK2'"]}'
# {"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"Results":[
#   {"AudienceCount":1,"CaughtUpCount":0,"DeliveredCount":1,"ExpireTime":1796763986,"RevokeTime":0,"Revoked":0,"StoredForOffline":1,"TaskID":"6b0f36d2_53724e00_1_3aae096d","TaskTime":1796159186,"Type":"Tag"},
#   {"AudienceCount":2,"CaughtUpCount":0,"DeliveredCount":0,"ExpireTime":1796763987,"RevokeTime":0,"Revoked":0,"StoredForOffline":1,"TaskID":"6b0f36d3_53724e00_2_2908f628","TaskTime":1796159187,"Type":"Expression"}]}
# (each result also has OfflinePush, the device notifications: none here)
# DeliveredCount: accounts the push was written to (xiaoming, if `tagcast listen` runs as him);
# CaughtUpCount: those of them that got it when they reconnected, not when it was sent;
# deliveries are recorded within ~250 ms, so the second push may not show its own yet.

# What became of the first push for xiaoming: "Delivered" if he is connected, else "Pending".
curl -s -w '\n' -X POST "$URL/timpush/all_member_push_trace?$Q" -d '{"TaskID": "'$TASK1'", "UserID": "xiaoming"}'
# {"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0,"InstanceTrace":[{"EventType":2,"IMCommitStat":{"IMStat":{"ErrorCode":0,"ErrorInfo":"","EventTime":1796159186,"PushStatus":"Delivered"}},"InstanceId":"6b0f36d2_53724e00_1_3aae096d_xiaoming","PushPlatform":0,"PushTime":"2026-12-01 21:06:26"}]}
