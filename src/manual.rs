//! The manual page and the shell completions, generated from the clap definitions
//! (`ecr-deployd manpage`, `ecr-deployd completions SHELL`): what the packages install.

use std::io::Write;

use clap::Command;

/// Sections no clap definition holds: update control, the gates, files, exit status.
const SECTIONS: &str = include_str!("../packaging/manual.roff");

/// The manual page (roff): the command, then each subcommand with its options, then
/// [`SECTIONS`].
pub fn render(cmd: Command, out: &mut impl Write) -> std::io::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    page.extend_from_slice(b".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("{} {}", cmd.get_name(), sub.get_name());
        let man = clap_mangen::Man::new(sub.clone().bin_name(name));
        let mut part = Vec::new();
        man.render_synopsis_section(&mut part)?;
        man.render_description_section(&mut part)?;
        man.render_options_section(&mut part)?;
        let part = String::from_utf8_lossy(&part)
            .replace(".SH SYNOPSIS\n", &format!(".SS \"{}\"\n", sub.get_name()))
            .replace(".SH DESCRIPTION\n", ".PP\n")
            .replace(".SH OPTIONS\n", ".PP\nOptions:\n");
        page.extend_from_slice(part.as_bytes());
    }
    page.extend_from_slice(SECTIONS.as_bytes());
    out.write_all(&page)
}

#[cfg(test)]
mod tests {
    use clap::{Arg, Command};

    #[test]
    fn every_subcommand_gets_its_section_with_its_options_and_the_extra_sections_follow() {
        let cmd = Command::new("tool")
            .about("does things")
            .subcommand(
                Command::new("go")
                    .about("goes")
                    .arg(Arg::new("fast").long("fast").help("quickly")),
            )
            .subcommand(Command::new("secret").hide(true));
        let mut out = Vec::new();
        super::render(cmd, &mut out).unwrap();
        let page = String::from_utf8(out).unwrap();
        assert!(page.contains(".SS \"go\""), "{page}");
        assert!(page.contains("tool go"), "{page}");
        assert!(page.contains("quickly"), "{page}");
        assert!(!page.contains(".SS \"secret\""), "{page}");
        assert!(page.contains(".SH \"SUPPLY-CHAIN GATES\""), "{page}");
    }
}
