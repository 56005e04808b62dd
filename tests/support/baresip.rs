//! baresip (Debian `baresip-core`) as an operator's softphone: registers with digest, answers
//! automatically, sends a tone from a file and dumps what it hears; optionally takes commands
//! (e.g. `transfer`) over its `ctrl_tcp` module.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use super::prompts::write_tone;

/// A baresip process, killed by its id and reaped when dropped (on shutdown baresip waits for its
/// un-REGISTER to be answered, so it is not asked to quit).
pub struct Baresip {
    child: std::process::Child,
    /// Where its `ctrl_tcp` module listens, when started with one.
    pub control: Option<SocketAddr>,
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Baresip {
    /// Sends one `ctrl_tcp` command (a JSON netstring) and returns its JSON answer.
    pub fn command(&self, command: &str, params: &str) -> String {
        let at = self.control.expect("baresip started without ctrl_tcp");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stream = loop {
            match TcpStream::connect(at) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("baresip's ctrl_tcp at {at}: {e}"),
            }
        };
        let json = format!(r#"{{"command":"{command}","params":"{params}","token":"t1"}}"#);
        stream.write_all(format!("{}:{json},", json.len()).as_bytes()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = vec![0u8; 4096];
        let n = stream.read(&mut answer).unwrap_or(0);
        String::from_utf8_lossy(&answer[..n]).into_owned()
    }
}

/// Starts baresip as agent `user` (password `<user>-test-password`) registered at `registrar`,
/// answering automatically, sending a `hz` tone and dumping what it hears into `dir`; with
/// `control`, its `ctrl_tcp` module listens there.
pub fn start(
    dir: &Path,
    registrar: SocketAddr,
    user: &str,
    hz: f64,
    control: Option<SocketAddr>,
) -> Baresip {
    let installed = std::process::Command::new("baresip")
        .arg("-h")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    assert!(installed, "baresip is not installed: run scripts/test, which installs baresip-core");
    write_tone(&dir.join("source.wav"), hz, 20.0);
    let ctrl = match control {
        Some(at) => format!("module_app\t\tctrl_tcp.so\nctrl_tcp_listen\t\t{at}\n"),
        None => String::new(),
    };
    let config = format!(
        "sip_listen\t\t127.0.0.1:0\n\
         net_interface\t\t127.0.0.1\n\
         dns_server\t\t127.0.0.1:53\n\
         module_path\t\t/usr/lib/baresip/modules\n\
         module\t\t\tg711.so\n\
         module\t\t\taufile.so\n\
         module\t\t\talsa.so\n\
         module\t\t\tsndfile.so\n\
         module\t\t\tuuid.so\n\
         module_app\t\taccount.so\n\
         module_app\t\tmenu.so\n\
         {ctrl}\
         audio_source\t\taufile,{source}\n\
         audio_player\t\talsa,null\n\
         snd_path\t\t{dir}\n",
        source = dir.join("source.wav").display(),
        dir = dir.display(),
    );
    std::fs::write(dir.join("config"), config).unwrap();
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:{user}@{registrar};transport=udp>;auth_user={user};\
             auth_pass={user}-test-password;answermode=auto;regint=120\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("baresip.log")).unwrap();
    let child = std::process::Command::new("baresip")
        .arg("-f")
        .arg(dir)
        .args(["-t", "40"])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    Baresip { child, control }
}

/// The samples of baresip's dump of what it received (`dump-*-dec.wav`).
pub fn heard(dir: &Path) -> Vec<i16> {
    let dump = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .unwrap_or_else(|| panic!("baresip wrote no dump in {}", dir.display()));
    hound::WavReader::open(&dump).unwrap().samples::<i16>().map(|s| s.unwrap()).collect()
}
