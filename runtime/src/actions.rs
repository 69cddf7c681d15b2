//! What each action runs, as Apptainer's action script does: `exec` the command, `run` the
//! runscript (or `/apptainer`, `/singularity`, or an OCI image's entrypoint and command),
//! `shell` the chosen shell, `test` the test script.

use crate::env::sq;
use crate::options::Action;

/// An OCI image config's process fields (from a SIF's `oci-config.json`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OciProcess {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
}

impl OciProcess {
    /// The argv of `run` with `args`: the entrypoint, then the arguments if any were given,
    /// else the image's command (Docker's and Apptainer's rule).
    pub fn argv(&self, args: &[String]) -> Vec<String> {
        let mut v = self.entrypoint.clone();
        if args.is_empty() {
            v.extend(self.cmd.iter().cloned());
        } else {
            v.extend(args.iter().cloned());
        }
        v
    }
}

/// The sh code that ends the environment script and starts the action; `"$@"` holds the
/// action's arguments.
pub fn tail(action: Action, oci: Option<&OciProcess>) -> String {
    match action {
        Action::Exec => "exec \"$@\"".into(),
        Action::Run => {
            let mut s = String::from(
                "for __sb_r in /.singularity.d/runscript /apptainer /singularity; do\n\
                 if [ -x \"$__sb_r\" ]; then exec \"$__sb_r\" \"$@\"; fi\n\
                 if [ -f \"$__sb_r\" ]; then exec /bin/sh \"$__sb_r\" \"$@\"; fi\n\
                 done\n",
            );
            if let Some(o) = oci.filter(|o| !o.entrypoint.is_empty() || !o.cmd.is_empty()) {
                let quoted = |v: &[String]| v.iter().map(|a| sq(a)).collect::<Vec<_>>().join(" ");
                s.push_str(&format!(
                    "if [ $# -gt 0 ]; then exec {} \"$@\"; else exec {}; fi\n",
                    quoted(&o.entrypoint),
                    quoted(&o.argv(&[]))
                ));
            } else {
                s.push_str(
                    "echo 'No runscript found in the container, executing /bin/sh' >&2\n\
                     exec /bin/sh \"$@\"\n",
                );
            }
            s
        }
        Action::Shell => "if [ -n \"${SINGULARITY_SHELL:-}\" ]; then \
             __sb_s=$SINGULARITY_SHELL; unset SINGULARITY_SHELL; exec \"$__sb_s\" \"$@\"; fi\n\
             if [ -x /bin/bash ]; then exec /bin/bash --norc \"$@\"; fi\n\
             exec /bin/sh \"$@\""
            .into(),
        Action::Test => {
            "if [ -x /.singularity.d/test ]; then exec /.singularity.d/test \"$@\"; fi\n\
             if [ -f /.singularity.d/test ]; then exec /bin/sh /.singularity.d/test \"$@\"; fi\n\
             echo 'No test script found in container, exiting' >&2\n\
             exit 0"
                .into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_arguments_replace_the_command_not_the_entrypoint() {
        let o = OciProcess {
            entrypoint: vec!["/init".into()],
            cmd: vec!["serve".into(), "--port=1".into()],
        };
        assert_eq!(o.argv(&[]), vec!["/init", "serve", "--port=1"]);
        assert_eq!(o.argv(&["x".into()]), vec!["/init", "x"]);
        let t = tail(Action::Run, Some(&o));
        assert!(
            t.contains("exec '/init' \"$@\"") && t.contains("exec '/init' 'serve' '--port=1'"),
            "{t}"
        );
    }

    #[test]
    fn each_action_has_its_dispatch() {
        assert_eq!(tail(Action::Exec, None), "exec \"$@\"");
        assert!(tail(Action::Run, None).contains("No runscript found"));
        assert!(tail(Action::Shell, None).contains("/bin/bash --norc"));
        assert!(tail(Action::Test, None).contains("/.singularity.d/test"));
    }
}
