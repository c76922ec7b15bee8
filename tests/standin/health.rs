//! `/livez`, `/readyz` and `/healthz` in the text format of k8s.io/apiserver's healthz
//! package: `ok` when every check passes, otherwise HTTP 500 with one `[+]name ok` or
//! `[-]name failed: reason` line per check and `<endpoint> check failed`. `?verbose` lists the
//! checks on success too. Unlike the real servers the reason is always shown, not withheld.

use crate::faults::Faults;
use crate::http::{Request, Response};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Livez,
    Readyz,
    Healthz,
}

impl Endpoint {
    pub fn from_path(path: &str) -> Option<Endpoint> {
        match path.trim_end_matches('/') {
            "/livez" => Some(Endpoint::Livez),
            "/readyz" => Some(Endpoint::Readyz),
            "/healthz" => Some(Endpoint::Healthz),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Endpoint::Livez => "livez",
            Endpoint::Readyz => "readyz",
            Endpoint::Healthz => "healthz",
        }
    }

    fn failed_by(self, faults: &Faults) -> bool {
        match self {
            Endpoint::Livez => faults.fail_livez,
            Endpoint::Readyz => faults.fail_readyz,
            Endpoint::Healthz => faults.fail_healthz,
        }
    }
}

/// One named check and its outcome.
pub struct Check {
    pub name: &'static str,
    pub result: Result<(), String>,
}

impl Check {
    pub fn ok(name: &'static str) -> Check {
        Check {
            name,
            result: Ok(()),
        }
    }
}

/// The response for `endpoint` given the component's own checks and the injected faults.
pub fn respond(
    request: &Request,
    endpoint: Endpoint,
    mut checks: Vec<Check>,
    faults: &Faults,
) -> Response {
    if endpoint.failed_by(faults) {
        let word = format!("fail-{}", endpoint.name());
        checks.push(Check {
            name: "boot-standin-fault",
            result: Err(format!("injected by the fault word {word}")),
        });
    }
    let failed = checks.iter().any(|c| c.result.is_err());
    if !failed && !request.has_param("verbose") {
        return Response::text(200, "ok");
    }
    let mut body = String::new();
    for check in &checks {
        match &check.result {
            Ok(()) => body.push_str(&format!("[+]{} ok\n", check.name)),
            Err(reason) => body.push_str(&format!("[-]{} failed: {reason}\n", check.name)),
        }
    }
    let verdict = if failed { "failed" } else { "passed" };
    body.push_str(&format!("{} check {verdict}\n", endpoint.name()));
    Response::text(if failed { 500 } else { 200 }, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(target: &str) -> Request {
        Request {
            method: "GET".into(),
            target: target.into(),
            headers: vec![],
            body: vec![],
            identity: None,
        }
    }

    #[test]
    fn ok_verbose_and_failed_bodies() {
        let plain = respond(
            &get("/livez"),
            Endpoint::Livez,
            vec![Check::ok("ping")],
            &Faults::default(),
        );
        assert_eq!((plain.status, plain.body.as_slice()), (200, &b"ok"[..]));

        let verbose = respond(
            &get("/readyz?verbose"),
            Endpoint::Readyz,
            vec![Check::ok("ping")],
            &Faults::default(),
        );
        assert_eq!(
            String::from_utf8(verbose.body).unwrap(),
            "[+]ping ok\nreadyz check passed\n"
        );

        let etcd_down = Check {
            name: "etcd",
            result: Err("connection refused".into()),
        };
        let failed = respond(
            &get("/readyz"),
            Endpoint::Readyz,
            vec![Check::ok("ping"), etcd_down],
            &Faults::default(),
        );
        assert_eq!(failed.status, 500);
        assert!(String::from_utf8(failed.body)
            .unwrap()
            .contains("[-]etcd failed: connection refused\nreadyz check failed"));
    }

    #[test]
    fn faults_fail_only_their_endpoint() {
        let faults = Faults {
            fail_livez: true,
            ..Faults::default()
        };
        assert_eq!(
            respond(&get("/livez"), Endpoint::Livez, vec![], &faults).status,
            500
        );
        assert_eq!(
            respond(&get("/readyz"), Endpoint::Readyz, vec![], &faults).status,
            200
        );
        assert_eq!(Endpoint::from_path("/healthz/"), Some(Endpoint::Healthz));
    }
}
