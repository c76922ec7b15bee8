//! ADD, CHECK and DEL over a configuration list (spec §3): ADD runs the plugins in order, each
//! given the previous result, and stops at the first error; CHECK runs them in order with the
//! cached result; DEL runs them in reverse with it and, being best-effort, goes on past a failing
//! plugin (every plugin still gets to release what it holds) and reports the first failure.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::conflist::{plugin_type, NetworkConfigList};
use super::exec::{run_plugin, CniCommand, CniEnv, PLUGIN_TIMEOUT};
use super::NetworkError;

/// One attachment's parameters, the same for every plugin of the list.
#[derive(Debug, Clone)]
pub struct Attachment<'a> {
    pub list: &'a NetworkConfigList,
    pub container_id: &'a str,
    pub netns: Option<&'a Path>,
    pub ifname: &'a str,
    pub cni_args: &'a str,
    pub capability_args: &'a Map<String, Value>,
    pub bin_dirs: &'a [PathBuf],
}

impl Attachment<'_> {
    fn call(
        &self,
        command: CniCommand,
        plugin: &Map<String, Value>,
        prev_result: Option<&Value>,
    ) -> Result<Vec<u8>, NetworkError> {
        let kind = plugin_type(plugin).unwrap_or_default();
        let request =
            super::request::plugin_request(self.list, plugin, self.capability_args, prev_result);
        let env = CniEnv {
            command,
            container_id: self.container_id,
            netns: self.netns,
            ifname: self.ifname,
            args: self.cni_args,
            bin_dirs: self.bin_dirs,
        };
        let stdin = serde_json::to_vec(&request).unwrap_or_default();
        run_plugin(kind, &env, &stdin, PLUGIN_TIMEOUT).map_err(|failure| NetworkError::Plugin {
            network: self.list.name.clone(),
            plugin: kind.to_string(),
            command,
            failure,
        })
    }

    /// Runs ADD through the chain; the final result.
    pub fn add(&self) -> Result<Value, NetworkError> {
        let mut result: Option<Value> = None;
        for plugin in &self.list.plugins {
            let out = self.call(CniCommand::Add, plugin, result.as_ref())?;
            let parsed: Value =
                serde_json::from_slice(&out).map_err(|e| NetworkError::BadResult {
                    network: self.list.name.clone(),
                    plugin: plugin_type(plugin).unwrap_or_default().to_string(),
                    problem: e.to_string(),
                })?;
            result = Some(parsed);
        }
        result.ok_or_else(|| NetworkError::BadResult {
            network: self.list.name.clone(),
            plugin: String::new(),
            problem: "the list has no plugins".into(),
        })
    }

    /// Runs CHECK through the chain with the cached result; skipped (`Ok`) when the list sets
    /// `disableCheck` or predates CHECK (CNI < 0.4.0).
    pub fn check(&self, prev_result: &Value) -> Result<(), NetworkError> {
        if self.list.disable_check || self.list.cni_version.starts_with("0.3.") {
            return Ok(());
        }
        for plugin in &self.list.plugins {
            self.call(CniCommand::Check, plugin, Some(prev_result))?;
        }
        Ok(())
    }

    /// Runs DEL through the chain in reverse; every plugin runs, the first failure is returned.
    pub fn del(&self, prev_result: Option<&Value>) -> Result<(), NetworkError> {
        let mut first_error = None;
        for plugin in self.list.plugins.iter().rev() {
            if let Err(e) = self.call(CniCommand::Del, plugin, prev_result) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    /// A plugin that appends "<type> <command>" to a log and answers with its input's
    /// prevResult plus its own name in `interfaces`.
    fn fake_plugin(dir: &Path, name: &str, fail_on: &str) {
        let log = dir.join("calls");
        let body = format!(
            r#"#!/bin/sh
input=$(cat)
echo "{name} $CNI_COMMAND prev=$(echo "$input" | grep -c prevResult)" >> {log}
if [ "$CNI_COMMAND" = "{fail_on}" ]; then
  echo '{{"cniVersion":"1.0.0","code":11,"msg":"{name} says no"}}'; exit 1
fi
echo '{{"cniVersion":"1.0.0","interfaces":[{{"name":"{name}"}}],"ips":[{{"address":"10.0.0.2/24"}}]}}'
"#,
            log = log.display()
        );
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn calls(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn add_chains_check_follows_and_del_runs_in_reverse_past_failures() {
        let dir = tempfile::tempdir().unwrap();
        fake_plugin(dir.path(), "first", "DEL");
        fake_plugin(dir.path(), "second", "none");
        let list = NetworkConfigList::from_json(&json!({"cniVersion": "1.0.0", "name": "n",
            "plugins": [{"type": "first"}, {"type": "second"}]}))
        .unwrap();
        let bin_dirs = vec![dir.path().to_path_buf()];
        let caps = Map::new();
        let attachment = Attachment {
            list: &list,
            container_id: "abc",
            netns: Some(Path::new("/run/netns/x")),
            ifname: "eth0",
            cni_args: "IgnoreUnknown=1",
            capability_args: &caps,
            bin_dirs: &bin_dirs,
        };
        let result = attachment.add().unwrap();
        assert_eq!(result["interfaces"][0]["name"], "second");
        attachment.check(&result).unwrap();
        let error = attachment.del(Some(&result)).unwrap_err();
        assert!(error.to_string().contains("first says no"), "{error}");
        assert_eq!(
            calls(dir.path()),
            [
                "first ADD prev=0",
                "second ADD prev=1",
                "first CHECK prev=1",
                "second CHECK prev=1",
                "second DEL prev=1",
                "first DEL prev=1"
            ]
        );
    }

    #[test]
    fn add_stops_at_the_first_failure() {
        let dir = tempfile::tempdir().unwrap();
        fake_plugin(dir.path(), "first", "ADD");
        fake_plugin(dir.path(), "second", "none");
        let list = NetworkConfigList::from_json(&json!({"cniVersion": "1.0.0", "name": "n",
            "plugins": [{"type": "first"}, {"type": "second"}]}))
        .unwrap();
        let bin_dirs = vec![dir.path().to_path_buf()];
        let caps = Map::new();
        let attachment = Attachment {
            list: &list,
            container_id: "abc",
            netns: None,
            ifname: "eth0",
            cni_args: "",
            capability_args: &caps,
            bin_dirs: &bin_dirs,
        };
        let error = attachment.add().unwrap_err();
        assert_eq!(
            error.to_string(),
            "network n: plugin first ADD failed: error 11 (try again later): first says no"
        );
        assert_eq!(calls(dir.path()), ["first ADD prev=0"]);
    }
}
