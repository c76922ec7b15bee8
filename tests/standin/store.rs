//! The API server stand-in's object store: ClusterRoles, ClusterRoleBindings, ConfigMaps,
//! Secrets, Roles and RoleBindings in memory,
//! with the real API's answers: 201 on create, 409 `AlreadyExists`, 404 `NotFound`,
//! 409 `Conflict` on a stale resourceVersion, all as `Status` objects.

use std::collections::BTreeMap;

use serde_json::{json, Value};

/// A collection the stand-in serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    ClusterRoles,
    ClusterRoleBindings,
    ConfigMaps { namespace: String },
    Secrets { namespace: String },
    Roles { namespace: String },
    RoleBindings { namespace: String },
}

impl Resource {
    fn plural(&self) -> &'static str {
        match self {
            Resource::ClusterRoles => "clusterroles",
            Resource::ClusterRoleBindings => "clusterrolebindings",
            Resource::ConfigMaps { .. } => "configmaps",
            Resource::Secrets { .. } => "secrets",
            Resource::Roles { .. } => "roles",
            Resource::RoleBindings { .. } => "rolebindings",
        }
    }

    fn group(&self) -> &'static str {
        match self {
            Resource::ConfigMaps { .. } | Resource::Secrets { .. } => "",
            _ => "rbac.authorization.k8s.io",
        }
    }

    fn namespace(&self) -> Option<&str> {
        match self {
            Resource::ClusterRoles | Resource::ClusterRoleBindings => None,
            Resource::ConfigMaps { namespace }
            | Resource::Secrets { namespace }
            | Resource::Roles { namespace }
            | Resource::RoleBindings { namespace } => Some(namespace),
        }
    }

    fn list_kind(&self) -> (&'static str, &'static str) {
        match self {
            Resource::ClusterRoles => ("ClusterRoleList", "rbac.authorization.k8s.io/v1"),
            Resource::ClusterRoleBindings => {
                ("ClusterRoleBindingList", "rbac.authorization.k8s.io/v1")
            }
            Resource::ConfigMaps { .. } => ("ConfigMapList", "v1"),
            Resource::Secrets { .. } => ("SecretList", "v1"),
            Resource::Roles { .. } => ("RoleList", "rbac.authorization.k8s.io/v1"),
            Resource::RoleBindings { .. } => ("RoleBindingList", "rbac.authorization.k8s.io/v1"),
        }
    }

    fn key(&self, name: &str) -> String {
        match self.namespace() {
            None => format!("{}/{name}", self.plural()),
            Some(namespace) => format!("{}/{namespace}/{name}", self.plural()),
        }
    }

    fn prefix(&self) -> String {
        self.key("")
    }

    /// kube-apiserver's `Forbidden` status for `user` doing `method` on this collection.
    pub fn forbidden(&self, user: &str, method: &str) -> Value {
        let verb = match method {
            "POST" => "create",
            "PUT" => "update",
            "DELETE" => "delete",
            _ => "get",
        };
        let scope = match self.namespace() {
            Some(namespace) => format!("in the namespace \"{namespace}\""),
            None => "at the cluster scope".to_string(),
        };
        let message = format!(
            "{} is forbidden: User \"{user}\" cannot {verb} resource \"{}\" in API group \"{}\" {scope}",
            qualified(self),
            self.plural(),
            self.group()
        );
        status(
            403,
            "Forbidden",
            message,
            json!({"group": self.group(), "kind": self.plural()}),
        )
    }

    /// The resource and optional object name a request path addresses.
    pub fn route(path: &str) -> Option<(Resource, Option<String>)> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match segments.as_slice() {
            ["apis", "rbac.authorization.k8s.io", "v1", "clusterrolebindings", rest @ ..]
                if rest.len() <= 1 =>
            {
                Some((
                    Resource::ClusterRoleBindings,
                    rest.first().map(|n| n.to_string()),
                ))
            }
            ["apis", "rbac.authorization.k8s.io", "v1", "clusterroles", rest @ ..]
                if rest.len() <= 1 =>
            {
                Some((Resource::ClusterRoles, rest.first().map(|n| n.to_string())))
            }
            ["api", "v1", "namespaces", ns, plural @ ("configmaps" | "secrets"), rest @ ..]
                if rest.len() <= 1 =>
            {
                let namespace = ns.to_string();
                let resource = match *plural {
                    "configmaps" => Resource::ConfigMaps { namespace },
                    _ => Resource::Secrets { namespace },
                };
                Some((resource, rest.first().map(|n| n.to_string())))
            }
            ["apis", "rbac.authorization.k8s.io", "v1", "namespaces", ns, plural, rest @ ..]
                if rest.len() <= 1 =>
            {
                let namespace = ns.to_string();
                let resource = match *plural {
                    "roles" => Resource::Roles { namespace },
                    "rolebindings" => Resource::RoleBindings { namespace },
                    _ => return None,
                };
                Some((resource, rest.first().map(|n| n.to_string())))
            }
            _ => None,
        }
    }
}

/// A `metav1.Status` failure object.
pub fn status(code: u16, reason: &str, message: String, details: Value) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "details": details, "code": code,
    })
}

#[derive(Default)]
pub struct Store {
    objects: BTreeMap<String, Value>,
    resource_version: u64,
}

impl Store {
    /// Handles one API call; returns the HTTP status and the JSON body.
    pub fn handle(
        &mut self,
        method: &str,
        resource: &Resource,
        name: Option<&str>,
        body: &[u8],
    ) -> (u16, Value) {
        match (method, name) {
            ("GET", None) => (200, self.list(resource)),
            ("GET", Some(name)) => self.get(resource, name),
            ("POST", None) => match parse_object(body) {
                Ok(object) => self.create(resource, object),
                Err(e) => (400, status(400, "BadRequest", e, json!({}))),
            },
            ("PUT", Some(name)) => match parse_object(body) {
                Ok(object) => self.update(resource, name, object),
                Err(e) => (400, status(400, "BadRequest", e, json!({}))),
            },
            ("DELETE", Some(name)) => match self.objects.remove(&resource.key(name)) {
                Some(_) => (200, json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": details(resource, name)})),
                None => not_found(resource, name),
            },
            _ => (405, status(405, "MethodNotAllowed", format!("the server does not allow this method on the requested resource ({method})"), json!({}))),
        }
    }

    /// Whether a stored ClusterRoleBinding to ClusterRole `cluster-admin` names this user or
    /// one of its groups: the only grant the `rbac` fault's authorizer knows.
    pub fn is_cluster_admin(&self, user: &str, groups: &[String]) -> bool {
        let prefix = Resource::ClusterRoleBindings.prefix();
        self.objects
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(_, crb)| crb.pointer("/roleRef/name") == Some(&json!("cluster-admin")))
            .flat_map(|(_, crb)| crb["subjects"].as_array().cloned().unwrap_or_default())
            .any(
                |subject| match (subject["kind"].as_str(), subject["name"].as_str()) {
                    (Some("User"), Some(name)) => name == user,
                    (Some("Group"), Some(name)) => groups.iter().any(|g| g == name),
                    _ => false,
                },
            )
    }

    fn list(&self, resource: &Resource) -> Value {
        let prefix = resource.prefix();
        let items: Vec<&Value> = self
            .objects
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v)
            .collect();
        let (kind, api_version) = resource.list_kind();
        json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": self.resource_version.to_string()}, "items": items})
    }

    fn get(&self, resource: &Resource, name: &str) -> (u16, Value) {
        match self.objects.get(&resource.key(name)) {
            Some(object) => (200, object.clone()),
            None => not_found(resource, name),
        }
    }

    fn create(&mut self, resource: &Resource, mut object: Value) -> (u16, Value) {
        let Some(name) = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return (422, status(422, "Invalid", format!("{} \"\" is invalid: metadata.name: Required value: name or generateName is required", resource.plural()), json!({})));
        };
        let key = resource.key(&name);
        if self.objects.contains_key(&key) {
            let message = format!("{} \"{name}\" already exists", qualified(resource));
            return (
                409,
                status(409, "AlreadyExists", message, details(resource, &name)),
            );
        }
        self.resource_version += 1;
        let meta = &mut object["metadata"];
        meta["resourceVersion"] = json!(self.resource_version.to_string());
        meta["uid"] = json!(format!(
            "00000000-0000-4000-8000-{:012x}",
            self.resource_version
        ));
        meta["creationTimestamp"] = json!(now_rfc3339());
        if let Some(namespace) = resource.namespace() {
            meta["namespace"] = json!(namespace);
        }
        self.objects.insert(key, object.clone());
        (201, object)
    }

    fn update(&mut self, resource: &Resource, name: &str, mut object: Value) -> (u16, Value) {
        let key = resource.key(name);
        let Some(existing) = self.objects.get(&key) else {
            return not_found(resource, name);
        };
        if object.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
            return (
                400,
                status(
                    400,
                    "BadRequest",
                    "the name of the object does not match the name on the URL".into(),
                    json!({}),
                ),
            );
        }
        let stored_version = existing.pointer("/metadata/resourceVersion").cloned();
        if let Some(sent) = object
            .pointer("/metadata/resourceVersion")
            .filter(|v| !v.as_str().unwrap_or("").is_empty())
        {
            if Some(sent) != stored_version.as_ref() {
                let message = format!("Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", qualified(resource));
                return (
                    409,
                    status(409, "Conflict", message, details(resource, name)),
                );
            }
        }
        let (uid, created) = (
            existing["metadata"]["uid"].clone(),
            existing["metadata"]["creationTimestamp"].clone(),
        );
        self.resource_version += 1;
        let meta = &mut object["metadata"];
        meta["resourceVersion"] = json!(self.resource_version.to_string());
        meta["uid"] = uid;
        meta["creationTimestamp"] = created;
        if let Some(namespace) = resource.namespace() {
            meta["namespace"] = json!(namespace);
        }
        self.objects.insert(key, object.clone());
        (200, object)
    }
}

fn parse_object(body: &[u8]) -> Result<Value, String> {
    match serde_json::from_slice::<Value>(body) {
        Ok(object @ Value::Object(_)) if object["metadata"].is_object() => Ok(object),
        Ok(_) => Err("the request body is not an object with metadata".into()),
        Err(e) => Err(format!("the request body is not JSON: {e}")),
    }
}

/// `clusterrolebindings.rbac.authorization.k8s.io`, or `configmaps` for the core group.
fn qualified(resource: &Resource) -> String {
    match resource.group() {
        "" => resource.plural().to_string(),
        group => format!("{}.{group}", resource.plural()),
    }
}

fn details(resource: &Resource, name: &str) -> Value {
    json!({"name": name, "group": resource.group(), "kind": resource.plural()})
}

fn not_found(resource: &Resource, name: &str) -> (u16, Value) {
    let message = format!("{} \"{name}\" not found", qualified(resource));
    (
        404,
        status(404, "NotFound", message, details(resource, name)),
    )
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str) -> Vec<u8> {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}}).to_string().into_bytes()
    }

    #[test]
    fn create_duplicate_get_update_missing() {
        let mut store = Store::default();
        let (resource, name) =
            Resource::route("/api/v1/namespaces/kube-system/configmaps").unwrap();
        assert_eq!(name, None);
        let (code, created) = store.handle("POST", &resource, None, &cm("kubeadm-config"));
        assert_eq!(code, 201);
        assert_eq!(created["metadata"]["namespace"], "kube-system");
        let (code, dup) = store.handle("POST", &resource, None, &cm("kubeadm-config"));
        assert_eq!((code, dup["reason"].as_str()), (409, Some("AlreadyExists")));
        assert_eq!(
            dup["message"],
            "configmaps \"kubeadm-config\" already exists"
        );
        assert_eq!(
            store
                .handle("GET", &resource, Some("kubeadm-config"), b"")
                .0,
            200
        );
        assert_eq!(
            store
                .handle(
                    "PUT",
                    &resource,
                    Some("kubeadm-config"),
                    &cm("kubeadm-config")
                )
                .0,
            200
        );
        let (code, missing) = store.handle("GET", &resource, Some("nope"), b"");
        assert_eq!((code, missing["reason"].as_str()), (404, Some("NotFound")));
        assert_eq!(
            store.handle("GET", &resource, None, b"").1["items"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn clusterrolebinding_routes_and_messages() {
        let (resource, name) = Resource::route(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/kubeadm:cluster-admins",
        )
        .unwrap();
        assert_eq!(
            (resource.clone(), name.as_deref()),
            (
                Resource::ClusterRoleBindings,
                Some("kubeadm:cluster-admins")
            )
        );
        let (code, body) = Store::default().handle("GET", &resource, name.as_deref(), b"");
        assert_eq!(code, 404);
        assert_eq!(
            body["message"],
            "clusterrolebindings.rbac.authorization.k8s.io \"kubeadm:cluster-admins\" not found"
        );
        assert!(Resource::route("/api/v1/namespaces/x/services").is_none());
    }

    #[test]
    fn roles_and_role_bindings_are_namespaced_rbac_objects() {
        let (resource, name) = Resource::route(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings/x",
        )
        .unwrap();
        assert_eq!(
            (resource.clone(), name.as_deref()),
            (
                Resource::RoleBindings {
                    namespace: "kube-system".into()
                },
                Some("x")
            )
        );
        let (code, body) = Store::default().handle("GET", &resource, Some("x"), b"");
        assert_eq!(code, 404);
        assert_eq!(
            body["message"],
            "rolebindings.rbac.authorization.k8s.io \"x\" not found"
        );
        let (resource, _) =
            Resource::route("/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/roles")
                .unwrap();
        let mut store = Store::default();
        let (code, created) = store.handle("POST", &resource, None, &cm("r"));
        assert_eq!(
            (code, created["metadata"]["namespace"].as_str()),
            (201, Some("kube-system"))
        );
        assert!(Resource::route("/apis/rbac.authorization.k8s.io/v1/namespaces/x/pods").is_none());
    }

    #[test]
    fn cluster_admin_comes_from_a_binding_to_cluster_admin() {
        let mut store = Store::default();
        let groups = vec!["kubeadm:cluster-admins".to_string()];
        assert!(!store.is_cluster_admin("kubernetes-admin", &groups));
        let crb = json!({"metadata": {"name": "kubeadm:cluster-admins"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "Group", "name": "kubeadm:cluster-admins"}]});
        store.handle(
            "POST",
            &Resource::ClusterRoleBindings,
            None,
            crb.to_string().as_bytes(),
        );
        assert!(store.is_cluster_admin("kubernetes-admin", &groups));
        assert!(!store.is_cluster_admin("someone", &[]));
    }

    #[test]
    fn stale_resource_version_conflicts() {
        let mut store = Store::default();
        let resource = Resource::ConfigMaps {
            namespace: "default".into(),
        };
        store.handle("POST", &resource, None, &cm("a"));
        let stale = json!({"metadata": {"name": "a", "resourceVersion": "999"}}).to_string();
        assert_eq!(
            store
                .handle("PUT", &resource, Some("a"), stale.as_bytes())
                .0,
            409
        );
    }
}
