//! Bearer tokens for the distribution API (Harbor; Distribution with token auth): the
//! `WWW-Authenticate: Bearer realm=…,service=…,scope=…` challenge of a `401`, the token from
//! the realm (with the registry's basic credentials when there are any), and a small cache per
//! registry and repository until the token expires.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::{Response, StatusCode};
use serde::Deserialize;

use crate::ports::PullAuth;

/// Tokens are used until this long before they expire.
const MARGIN: Duration = Duration::from_secs(10);
/// A token answer without `expires_in` lasts this long (the token specification's default).
const DEFAULT_LIFETIME: u64 = 60;
/// Tokens kept at most; past this, expired ones go, then all.
const MAX_TOKENS: usize = 256;
/// A token answer larger than this is refused.
const MAX_ANSWER: usize = 64 * 1024;

/// A bearer challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub service: Option<String>,
    pub scope: Option<String>,
}

/// Parses `Bearer realm="…",service="…",scope="…"`; `None` for another scheme.
pub fn parse(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut rest = params.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_at(after.find(',').unwrap_or(after.len())),
        };
        fields.insert(key.trim().to_ascii_lowercase(), value.to_owned());
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge {
        realm: fields.remove("realm").filter(|r| !r.is_empty())?,
        service: fields.remove("service"),
        scope: fields.remove("scope"),
    })
}

/// `host/repository` of a distribution API URL (`…://host/v2/<name>/manifests/…`).
fn key_of(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (host, path) = rest.split_once("/v2/")?;
    let end = ["/manifests/", "/blobs/", "/referrers/", "/tags/"]
        .iter()
        .filter_map(|m| path.find(m))
        .min()?;
    Some(format!("{host}/{}", &path[..end]))
}

/// The bearer challenge of a `401` answer to `url`, its scope filled in from the URL's
/// repository when the registry left it out.
pub fn challenge_of(resp: &Response, url: &str) -> Option<Challenge> {
    if resp.status() != StatusCode::UNAUTHORIZED {
        return None;
    }
    let header = resp.headers().get(reqwest::header::WWW_AUTHENTICATE)?;
    let mut c = parse(header.to_str().ok()?)?;
    if c.scope.is_none() {
        let key = key_of(url)?;
        let repository = key.split_once('/').map(|(_, r)| r)?;
        c.scope = Some(format!("repository:{repository}:pull"));
    }
    Some(c)
}

#[derive(Deserialize)]
struct Answer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Tokens per `host/repository`.
#[derive(Debug, Default)]
pub struct Cache(Mutex<HashMap<String, (String, Instant)>>);

impl Cache {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A token for `url`'s repository that has not expired.
    pub fn cached(&self, url: &str) -> Option<String> {
        let key = key_of(url)?;
        let map = self.map();
        let (token, until) = map.get(&key)?;
        (Instant::now() < *until).then(|| token.clone())
    }

    /// Asks the challenge's realm for a token (with `auth`'s basic credentials when it has
    /// a user name) and keeps it for `url`'s repository. `Err((why, transient))`.
    pub async fn fetch(
        &self,
        client: &reqwest::Client,
        url: &str,
        challenge: &Challenge,
        auth: Option<&PullAuth>,
    ) -> Result<String, (String, bool)> {
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = &challenge.service {
            query.push(("service", s));
        }
        if let Some(s) = &challenge.scope {
            query.push(("scope", s));
        }
        let realm = url::Url::parse_with_params(&challenge.realm, &query)
            .map_err(|e| (format!("realm {:?}: {e}", challenge.realm), false))?;
        let mut request = client.get(realm);
        if let Some(a) = auth.filter(|a| !a.username.is_empty()) {
            request = request.basic_auth(&a.username, Some(&a.password));
        }
        let resp = request
            .send()
            .await
            .map_err(|e| (format!("{}: {e}", challenge.realm), true))?;
        let status = resp.status();
        if !status.is_success() {
            let transient = status.is_server_error() || status.as_u16() == 429;
            return Err((format!("{}: HTTP {status}", challenge.realm), transient));
        }
        if resp.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
            return Err((format!("{}: answer too large", challenge.realm), false));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| (format!("{}: {e}", challenge.realm), true))?;
        let answer: Answer =
            serde_json::from_slice(&body[..body.len().min(MAX_ANSWER)]).map_err(|e| {
                (
                    format!("{}: not a token answer: {e}", challenge.realm),
                    false,
                )
            })?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                (
                    format!("{}: the answer holds no token", challenge.realm),
                    false,
                )
            })?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(DEFAULT_LIFETIME));
        if let Some(key) = key_of(url) {
            self.keep(key, token.clone(), lifetime);
        }
        Ok(token)
    }

    fn keep(&self, key: String, token: String, lifetime: Duration) {
        let now = Instant::now();
        let mut map = self.map();
        if map.len() >= MAX_TOKENS {
            map.retain(|_, (_, until)| *until > now);
            if map.len() >= MAX_TOKENS {
                map.clear();
            }
        }
        map.insert(key, (token, now + lifetime.saturating_sub(MARGIN)));
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_challenge_is_read_with_quoted_and_bare_values_and_other_schemes_are_not() {
        let c = parse(r#"Bearer realm="https://harbor.site/service/token",service="harbor-registry",scope="repository:library/app:pull""#).unwrap();
        assert_eq!(c.realm, "https://harbor.site/service/token");
        assert_eq!(c.service.as_deref(), Some("harbor-registry"));
        assert_eq!(c.scope.as_deref(), Some("repository:library/app:pull"));
        // A scope with a comma inside its quotes stays whole; bare values and spaces pass.
        let c = parse(r#"bearer realm=https://r/t, scope="repository:a/b:pull,push""#).unwrap();
        assert_eq!(c.realm, "https://r/t");
        assert_eq!(c.scope.as_deref(), Some("repository:a/b:pull,push"));
        assert_eq!(c.service, None);
        assert!(parse(r#"Basic realm="https://r""#).is_none());
        assert!(parse(r#"Bearer service="x""#).is_none(), "no realm");
        assert!(parse(r#"Bearer realm="unterminated"#).is_none());
    }

    #[test]
    fn tokens_are_kept_per_registry_and_repository_until_they_expire_and_stay_bounded() {
        assert_eq!(
            key_of("https://h:5000/v2/team/web/manifests/prod").as_deref(),
            Some("h:5000/team/web")
        );
        assert_eq!(
            key_of("http://h/v2/a/blobs/sha256:00").as_deref(),
            Some("h/a")
        );
        assert_eq!(key_of("http://h/v2/"), None);
        let cache = Cache::default();
        cache.keep("h/team/web".into(), "t1".into(), Duration::from_secs(60));
        assert_eq!(
            cache.cached("http://h/v2/team/web/manifests/x").as_deref(),
            Some("t1")
        );
        assert_eq!(cache.cached("http://h/v2/team/api/manifests/x"), None);
        // A lifetime within the margin is already expired.
        cache.keep("h/team/api".into(), "t2".into(), Duration::from_secs(5));
        assert_eq!(cache.cached("http://h/v2/team/api/manifests/x"), None);
        for i in 0..(MAX_TOKENS * 2) {
            cache.keep(format!("h/r{i}"), "t".into(), Duration::from_secs(60));
        }
        assert!(cache.len() <= MAX_TOKENS, "{}", cache.len());
    }
}
