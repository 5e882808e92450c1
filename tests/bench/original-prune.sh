#!/usr/bin/env bash
# The pruning step of the cron script lifeboat replaces, as the guide has it:
# every image whose CreationDate sorts before a YYYYMMDD string of seven days
# ago is deregistered, then its snapshots are deleted. Kept only to measure it
# beside retention-pruner (make bench-prune); lifeboat never runs it.
#
# CreationDate is "2026-11-19T01:00:00.000Z": compared as a string with
# "20261119" it is always smaller ('-' sorts before any digit), so every image
# the account owns is selected, tagged or not, newest included.
#
# PRUNE_NOW: the date to prune at; PRUNE_LIMIT: stop after that many images
# (to time a sample of the loop); prints "selected N" first.
set -u
old_date=$(date -u -d "${PRUNE_NOW:-now} -7 days" +%Y%m%d)
amis=$(aws ec2 describe-images --owners self --query "Images[?CreationDate<'${old_date}'].ImageId" --output text) || exit 1
echo "selected $(wc -w <<<"$amis")"
n=0
for ami in $amis; do
  [ "$n" -ge "${PRUNE_LIMIT:-1000000}" ] && break
  snaps=$(aws ec2 describe-images --image-ids "$ami" --query 'Images[0].BlockDeviceMappings[*].Ebs.SnapshotId' --output text)
  aws ec2 deregister-image --image-id "$ami"
  for s in $snaps; do aws ec2 delete-snapshot --snapshot-id "$s"; done
  n=$((n + 1))
done
echo "processed $n"
