//! Writing the kubeconfig that `flotilla up` hands to kubectl and to remote node agents.

use std::path::Path;

/// Writes a kubeconfig for `server` with a bearer `token`, readable only by its owner since the
/// token is the cluster's credential. Written to a temporary file and renamed, so a reader never
/// sees half a file.
pub fn write(path: &Path, server: &str, token: &str) -> std::io::Result<()> {
    let text = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: flotilla
  cluster:
    server: {server}
users:
- name: flotilla-admin
  user:
    token: {token}
contexts:
- name: flotilla
  context:
    cluster: flotilla
    user: flotilla-admin
    namespace: default
current-context: flotilla
"
    );
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&temporary, path)
}
