"""Baseline B of `make bench`: what a user would write instead of gmail-refresh, with
boto3, google-auth and google-api-python-client, doing the same work as one process: read
the token parameter, refresh it, write it back, list messages, get their metadata.

Prints one JSON line: the wall-clock epoch when the imports were done, and the message count.
Endpoints come from AWS_ENDPOINT_URL (boto3) and GMAIL_API_ENDPOINT; the token URI is in
the token itself."""

import time

import json
import os
import sys

import boto3
from google.auth.transport.requests import Request
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build

imports_done = time.time()

token_param = sys.argv[1]
max_messages = int(sys.argv[2])

ssm = boto3.client("ssm")
stored = ssm.get_parameter(Name=token_param, WithDecryption=True)["Parameter"]["Value"]
info = json.loads(stored)
# google-auth's reader always replaces token_uri with Google's; point it back at the fake.
creds = Credentials.from_authorized_user_info(info).with_token_uri(info["token_uri"])
if not creds.valid:
    creds.refresh(Request())
    ssm.put_parameter(Name=token_param, Value=creds.to_json(), Type="SecureString", Overwrite=True)

gmail = build(
    "gmail",
    "v1",
    credentials=creds,
    static_discovery=True,
    client_options={"api_endpoint": os.environ["GMAIL_API_ENDPOINT"]},
)
listed = gmail.users().messages().list(userId="me", q="in:inbox is:unread", maxResults=max_messages).execute()
summaries = []
for message in listed.get("messages", []):
    full = gmail.users().messages().get(
        userId="me", id=message["id"], format="metadata", metadataHeaders=["From", "Subject", "Date"]
    ).execute()
    headers = {h["name"]: h["value"] for h in full["payload"]["headers"]}
    summaries.append({"id": full["id"], "from": headers.get("From"), "subject": headers.get("Subject")})

print(json.dumps({"imports_done": imports_done, "message_count": len(summaries)}))
