//! FHIR Subscriptions after the R5 Subscriptions Backport IG for R4: the one topic onedoor offers (a
//! referral Task's status changed), what a Subscription asking for it must say (`criteria` = the topic,
//! channel `rest-hook`, payload `application/fhir+json` with `id-only` content, optional filter
//! `Task?status=...`, heartbeat period, channel headers), read with checked accessors into a
//! [`ChannelRequest`], and the notification Bundles sent on the channel (handshake, heartbeat,
//! event-notification), which carry ids only: the subscriber reads the Task with its own credentials.

use crate::members::Members;
use serde_json::{Value, json};

/// The topic: a referral Task's status changed (the referrer learns whether help arrived).
pub const TASK_STATUS_TOPIC: &str =
    "http://onedoor.dev/fhir/SubscriptionTopic/referral-task-status";
/// The Backport IG's Subscription profile.
pub const BACKPORT_SUBSCRIPTION: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription";
/// The Backport IG's R4 SubscriptionStatus (Parameters) profile.
pub const BACKPORT_STATUS: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4";
/// The Backport IG's notification Bundle profile.
pub const BACKPORT_NOTIFICATION: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-notification-r4";
const EXTENSION: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/";
/// The CapabilityStatement extension naming a supported topic.
pub const TOPIC_CANONICAL_EXTENSION: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical";
/// The longest heartbeat period accepted, in seconds (one day).
pub const MAX_HEARTBEAT_SECS: u64 = 86_400;
/// At most this many channel headers.
const MAX_HEADERS: usize = 8;
/// Headers the channel may not set (onedoor sets them itself).
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "idempotency-key",
    "x-request-id",
    "transfer-encoding",
    "connection",
];

/// What is wrong with a Subscription onedoor is asked to create (each names the element).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubscriptionError {
    /// `criteria` is not the topic onedoor offers.
    #[error(
        "Subscription.criteria: expected the topic {TASK_STATUS_TOPIC} (a referral Task's status changed), got '{0}'"
    )]
    UnknownTopic(String),
    /// A channel type other than rest-hook.
    #[error("Subscription.channel.type: onedoor notifies by 'rest-hook' only, not '{0}'")]
    ChannelType(String),
    /// No usable endpoint.
    #[error("Subscription.channel.endpoint: {0}")]
    Endpoint(String),
    /// A payload other than FHIR JSON, or content other than id-only.
    #[error("Subscription.channel.payload: {0}")]
    Payload(String),
    /// A channel header that is not `Name: value`, or one onedoor sets itself.
    #[error("Subscription.channel.header[{index}]: {detail}")]
    Header {
        /// Which header.
        index: usize,
        /// What is wrong.
        detail: String,
    },
    /// A heartbeat period out of range.
    #[error("Subscription.channel heartbeat period: {0}")]
    Heartbeat(String),
    /// A filter onedoor cannot apply.
    #[error("Subscription.criteria filter: {0}")]
    Filter(String),
    /// A status other than `requested` (or `active`) on create.
    #[error(
        "Subscription.status: a new Subscription is 'requested' (onedoor activates it after the handshake), not '{0}'"
    )]
    Status(String),
}

/// A Subscription's channel and filter, as onedoor keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRequest {
    /// Where notifications are POSTed.
    pub endpoint: String,
    /// Channel headers sent with every notification, as `Name: value`.
    pub headers: Vec<String>,
    /// Heartbeat period in seconds (0: none).
    pub heartbeat_secs: u64,
    /// Task statuses notified (empty: every status change).
    pub statuses: Vec<String>,
}

/// Read a Subscription (already schema-valid) into the channel onedoor will notify.
pub fn parse(subscription: &Value) -> Result<ChannelRequest, SubscriptionError> {
    let status = text(subscription, "status");
    if !matches!(status, "requested" | "active") {
        return Err(SubscriptionError::Status(status.to_owned()));
    }
    let criteria = text(subscription, "criteria");
    if criteria.split('|').next() != Some(TASK_STATUS_TOPIC) {
        return Err(SubscriptionError::UnknownTopic(clip(criteria)));
    }
    let channel = subscription.get("channel").unwrap_or(&Value::Null);
    let kind = text(channel, "type");
    if kind != "rest-hook" {
        return Err(SubscriptionError::ChannelType(clip(kind)));
    }
    Ok(ChannelRequest {
        endpoint: endpoint(channel)?,
        headers: headers(channel)?,
        heartbeat_secs: heartbeat(channel)?,
        statuses: filter(subscription)?,
    })
    .and_then(|request| payload(channel).map(|()| request))
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn clip(text: &str) -> String {
    text.chars().take(120).collect()
}

fn endpoint(channel: &Value) -> Result<String, SubscriptionError> {
    let endpoint = text(channel, "endpoint");
    let url = url::Url::parse(endpoint).map_err(|e| {
        SubscriptionError::Endpoint(format!("expected an absolute http(s) URL: {e}"))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(SubscriptionError::Endpoint(format!(
            "expected an absolute http(s) URL, got scheme '{}'",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(SubscriptionError::Endpoint(
            "credentials in the URL are not accepted: send them as a channel header".into(),
        ));
    }
    Ok(endpoint.to_owned())
}

fn payload(channel: &Value) -> Result<(), SubscriptionError> {
    let mime = text(channel, "payload");
    if !matches!(mime, "application/fhir+json" | "application/json") {
        return Err(SubscriptionError::Payload(format!(
            "expected application/fhir+json, got '{}'",
            clip(mime)
        )));
    }
    let content = channel
        .at(&["_payload", "extension"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|e| text(e, "url") == format!("{EXTENSION}backport-payload-content"))
        .map(|e| text(e, "valueCode"));
    match content {
        None | Some("id-only") => Ok(()),
        Some(other) => Err(SubscriptionError::Payload(format!(
            "onedoor sends 'id-only' notifications (the subscriber reads the Task with its own credentials, so nothing passes the consent gate unchecked), not '{}'",
            clip(other)
        ))),
    }
}

fn headers(channel: &Value) -> Result<Vec<String>, SubscriptionError> {
    let list = channel
        .get("header")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if list.len() > MAX_HEADERS {
        return Err(SubscriptionError::Header {
            index: MAX_HEADERS,
            detail: format!("at most {MAX_HEADERS} headers"),
        });
    }
    list.iter()
        .enumerate()
        .map(|(index, header)| {
            let header = header.as_str().unwrap_or_default();
            check_header(header)
                .map(|()| header.to_owned())
                .map_err(|detail| SubscriptionError::Header { index, detail })
        })
        .collect()
}

/// A header `Name: value` that HTTP can carry and onedoor does not set itself.
fn check_header(header: &str) -> Result<(), String> {
    let Some((name, value)) = header.split_once(':') else {
        return Err("expected 'Name: value'".into());
    };
    let name = name.trim();
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("'{}' is not a header name", clip(name)));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!("onedoor sets '{name}' itself"));
    }
    if http::HeaderValue::from_str(value.trim()).is_err() {
        return Err(format!("the value of '{name}' is not a valid header value"));
    }
    Ok(())
}

fn heartbeat(channel: &Value) -> Result<u64, SubscriptionError> {
    let found = channel
        .get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|e| text(e, "url") == format!("{EXTENSION}backport-heartbeat-period"));
    let Some(found) = found else { return Ok(0) };
    let seconds = found.get("valueUnsignedInt").and_then(Value::as_u64);
    match seconds {
        Some(s) if (1..=MAX_HEARTBEAT_SECS).contains(&s) => Ok(s),
        _ => Err(SubscriptionError::Heartbeat(format!(
            "expected valueUnsignedInt from 1 to {MAX_HEARTBEAT_SECS} seconds"
        ))),
    }
}

/// The filter criteria: none, or `Task?status=a,b` (the statuses a subscriber wants to hear of).
fn filter(subscription: &Value) -> Result<Vec<String>, SubscriptionError> {
    let filters: Vec<&str> = subscription
        .at(&["_criteria", "extension"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|e| text(e, "url") == format!("{EXTENSION}backport-filter-criteria"))
        .map(|e| text(e, "valueString"))
        .collect();
    let mut statuses = Vec::new();
    for criteria in filters {
        let Some(list) = criteria.strip_prefix("Task?status=") else {
            return Err(SubscriptionError::Filter(format!(
                "onedoor filters by 'Task?status=<code>[,<code>]' only, not '{}'",
                clip(criteria)
            )));
        };
        for status in list.split(',') {
            if status
                .parse::<crate::canonical::task_status::TaskStatus>()
                .is_err()
            {
                return Err(SubscriptionError::Filter(format!(
                    "'{}' is not a Task status",
                    clip(status)
                )));
            }
            statuses.push(status.to_owned());
        }
    }
    Ok(statuses)
}

/// What a notification Bundle announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationType {
    /// Sent once when the Subscription is created: the endpoint must accept it.
    Handshake,
    /// Sent when nothing else was sent for the heartbeat period.
    Heartbeat,
    /// A Task's status changed.
    EventNotification,
    /// The answer to `$status`.
    QueryStatus,
}

impl NotificationType {
    /// The code in the SubscriptionStatus.
    pub fn code(self) -> &'static str {
        match self {
            Self::Handshake => "handshake",
            Self::Heartbeat => "heartbeat",
            Self::EventNotification => "event-notification",
            Self::QueryStatus => "query-status",
        }
    }
}

/// One notification: which Subscription, its status, the kind, the events so far and the event itself.
#[derive(Debug, Clone, Copy)]
pub struct Notification<'a> {
    /// The server's base URL (without `/fhir`).
    pub base_url: &'a str,
    /// The Subscription's id.
    pub subscription: &'a str,
    /// Its status (`requested` during the handshake, then `active`).
    pub status: &'a str,
    /// What this notification is.
    pub kind: NotificationType,
    /// Events since the Subscription started (this one included).
    pub events: i64,
    /// The Task whose status changed, for an event notification.
    pub focus: Option<&'a str>,
}

/// The notification Bundle (`history`): a SubscriptionStatus Parameters first, then, for an event, the
/// Task's full URL without its content (id-only).
pub fn notification_bundle(n: &Notification<'_>) -> Value {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut parameters = vec![
        json!({"name": "subscription", "valueReference": {"reference": format!("{}/fhir/Subscription/{}", n.base_url, n.subscription)}}),
        json!({"name": "topic", "valueCanonical": TASK_STATUS_TOPIC}),
        json!({"name": "status", "valueCode": n.status}),
        json!({"name": "type", "valueCode": n.kind.code()}),
        json!({"name": "events-since-subscription-start", "valueString": n.events.to_string()}),
    ];
    let mut entries = Vec::new();
    if let Some(task) = n.focus {
        parameters.push(json!({"name": "notification-event", "part": [
            {"name": "event-number", "valueString": n.events.to_string()},
            {"name": "timestamp", "valueInstant": now},
            {"name": "focus", "valueReference": {"reference": format!("{}/fhir/Task/{task}", n.base_url)}}
        ]}));
        entries.push(json!({
            "fullUrl": format!("{}/fhir/Task/{task}", n.base_url),
            "request": {"method": "PUT", "url": format!("Task/{task}")},
            "response": {"status": "200"}
        }));
    }
    let status = json!({
        "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "resource": {"resourceType": "Parameters", "meta": {"profile": [BACKPORT_STATUS]}, "parameter": parameters},
        "request": {"method": "GET", "url": format!("Subscription/{}/$status", n.subscription)},
        "response": {"status": "200"}
    });
    entries.insert(0, status);
    json!({
        "resourceType": "Bundle",
        "meta": {"profile": [BACKPORT_NOTIFICATION]},
        "type": "history",
        "timestamp": now,
        "entry": entries
    })
}

/// The Subscription resource as onedoor serves it: what was asked, with its id, status and profile.
pub fn resource(asked: &Value, id: &str, status: &str) -> Value {
    let mut resource = asked.clone();
    if let Some(object) = resource.as_object_mut() {
        object.insert("id".into(), json!(id));
        object.insert("status".into(), json!(status));
        object.remove("meta");
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        object.insert(
            "meta".into(),
            json!({"lastUpdated": now, "profile": [BACKPORT_SUBSCRIPTION]}),
        );
    }
    resource
}

/// The Subscription a partner's `notify_url` stands for (the shortcut of earlier configurations).
pub fn shortcut(partner: &str, endpoint: &str) -> Value {
    json!({
        "resourceType": "Subscription",
        "status": "active",
        "reason": format!("notify_url of partner '{partner}' in the configuration"),
        "criteria": TASK_STATUS_TOPIC,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": format!("{EXTENSION}backport-payload-content"), "valueCode": "id-only"}]}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked() -> Value {
        json!({
            "resourceType": "Subscription", "status": "requested", "reason": "referral status",
            "criteria": TASK_STATUS_TOPIC,
            "_criteria": {"extension": [{"url": format!("{EXTENSION}backport-filter-criteria"), "valueString": "Task?status=accepted,completed"}]},
            "channel": {
                "extension": [{"url": format!("{EXTENSION}backport-heartbeat-period"), "valueUnsignedInt": 60}],
                "type": "rest-hook", "endpoint": "https://school.example/hooks", "payload": "application/fhir+json",
                "_payload": {"extension": [{"url": format!("{EXTENSION}backport-payload-content"), "valueCode": "id-only"}]},
                "header": ["Authorization: Bearer chosen-by-subscriber"]
            }
        })
    }

    #[test]
    fn a_backport_subscription_reads_whole() {
        let request = parse(&asked()).unwrap();
        assert_eq!(request.endpoint, "https://school.example/hooks");
        assert_eq!(
            request.headers,
            ["Authorization: Bearer chosen-by-subscriber"]
        );
        assert_eq!(request.heartbeat_secs, 60);
        assert_eq!(request.statuses, ["accepted", "completed"]);
    }

    #[test]
    fn what_onedoor_cannot_honour_is_refused_by_element() {
        let cases: [(&str, Value, &str); 7] = [
            (
                "/criteria",
                json!("http://example.org/topic"),
                "Subscription.criteria",
            ),
            ("/channel/type", json!("websocket"), "rest-hook"),
            ("/channel/endpoint", json!("ftp://x.example/"), "http(s)"),
            (
                "/channel/payload",
                json!("application/fhir+xml"),
                "application/fhir+json",
            ),
            (
                "/channel/header/0",
                json!("Content-Type: text/plain"),
                "sets 'Content-Type'",
            ),
            ("/channel/header/0", json!("no colon"), "Name: value"),
            ("/status", json!("off"), "requested"),
        ];
        for (pointer, value, expected) in cases {
            let mut subscription = asked();
            *subscription.pointer_mut(pointer).unwrap() = value;
            let error = parse(&subscription).unwrap_err().to_string();
            assert!(error.contains(expected), "{pointer}: {error}");
        }
        let mut full = asked();
        full["channel"]["_payload"]["extension"][0]["valueCode"] = json!("full-resource");
        assert!(parse(&full).unwrap_err().to_string().contains("id-only"));
        let mut filtered = asked();
        filtered["_criteria"]["extension"][0]["valueString"] = json!("Patient?name=x");
        assert!(matches!(
            parse(&filtered),
            Err(SubscriptionError::Filter(_))
        ));
        let mut beat = asked();
        beat["channel"]["extension"][0]["valueUnsignedInt"] = json!(0);
        assert!(matches!(parse(&beat), Err(SubscriptionError::Heartbeat(_))));
    }

    #[test]
    fn notifications_carry_ids_only() {
        let bundle = notification_bundle(&Notification {
            base_url: "https://gw.example",
            subscription: "s1",
            status: "active",
            kind: NotificationType::EventNotification,
            events: 3,
            focus: Some("t1"),
        });
        assert_eq!(bundle["type"], "history");
        assert_eq!(
            bundle["entry"][1]["fullUrl"],
            "https://gw.example/fhir/Task/t1"
        );
        assert!(bundle["entry"][1].get("resource").is_none());
    }
}
