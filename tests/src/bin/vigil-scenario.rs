//! Scenario programs the integration tests run under vigil. Each makes raw syscalls (no libc
//! wrappers that might add or elide calls) so the test knows exactly what the kernel saw.
//!
//!   vigil-scenario known V4_PORT V6_PORT REFUSED_PORT EXIT_CODE
//!   vigil-scenario flood SECONDS      (prints the number of getppid calls made)
//!   vigil-scenario security           (prints "LISTEN_PORT CLIENT_PORT TRACED_PID")
//!   vigil-scenario migrate ROUNDS      (moves itself to the next CPU before each marker call)
//!   vigil-scenario drop-later          (prints "ready", then on a line of stdin handles a
//!                                       signal, drops its uid and exits)

use std::{
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
    process::exit,
    time::{Duration, Instant},
};

use vigil_tests::MARKER;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("known") if args.len() == 6 => {
            let port = |i: usize| args[i].parse::<u16>().unwrap_or_else(|_| usage());
            let code = args[5].parse::<i32>().unwrap_or_else(|_| usage());
            known(port(2), port(3), port(4), code)
        }
        Some("flood") if args.len() == 3 => {
            let secs = args[2].parse::<f64>().unwrap_or_else(|_| usage());
            flood(Duration::from_secs_f64(secs))
        }
        Some("security") => security(),
        Some("drop-later") => drop_later(),
        Some("migrate") if args.len() == 3 => {
            migrate(args[2].parse::<u32>().unwrap_or_else(|_| usage()))
        }
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: vigil-scenario known V4 V6 REFUSED CODE | flood SECONDS | security | migrate ROUNDS | drop-later"
    );
    exit(2)
}

fn known(v4: u16, v6: u16, refused: u16, code: i32) -> ! {
    for nr in MARKER {
        // SAFETY: argument-less (or umask(0o022)) syscalls with no memory effects.
        unsafe { libc::syscall(nr, 0o022) };
    }
    connect(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, v4)));
    connect(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, v6, 0, 0)));
    connect(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, refused)));
    // SAFETY: ends the process.
    unsafe { libc::syscall(libc::SYS_exit_group, code) };
    unreachable!("exit_group returned")
}

/// A raw socket + connect so the destination the kernel sees is exactly this one.
fn connect(addr: SocketAddr) {
    // SAFETY: plain socket/connect/close on stack-allocated sockaddrs of the right size.
    unsafe {
        let (family, raw, len): (i32, Vec<u8>, u32) = match addr {
            SocketAddr::V4(a) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as u16;
                sa.sin_port = a.port().to_be();
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                let bytes = std::slice::from_raw_parts((&sa as *const libc::sockaddr_in).cast::<u8>(), size_of_val(&sa)).to_vec();
                (libc::AF_INET, bytes, size_of_val(&sa) as u32)
            }
            SocketAddr::V6(a) => {
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as u16;
                sa.sin6_port = a.port().to_be();
                sa.sin6_addr.s6_addr = a.ip().octets();
                let bytes = std::slice::from_raw_parts((&sa as *const libc::sockaddr_in6).cast::<u8>(), size_of_val(&sa)).to_vec();
                (libc::AF_INET6, bytes, size_of_val(&sa) as u32)
            }
        };
        let fd = libc::socket(family, libc::SOCK_STREAM, 0);
        if fd < 0 {
            eprintln!("socket: {}", std::io::Error::last_os_error());
            exit(3);
        }
        libc::connect(fd, raw.as_ptr().cast(), len);
        libc::close(fd);
    }
}

fn flood(duration: Duration) -> ! {
    let start = Instant::now();
    let mut calls: u64 = 0;
    // Check the clock (vDSO, no syscall) only every 4096 calls so the loop is all getppid.
    while start.elapsed() < duration {
        for _ in 0..4096 {
            // SAFETY: getppid has no arguments and no effects.
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
        calls += 4096;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{calls} {secs}");
    exit(0)
}

/// Round i pins the thread to CPU i mod n (the kernel moves it before sched_setaffinity
/// returns), then makes marker call i mod 3: getuid, getgid, getppid. vigil batches per CPU, so
/// this is the case where a thread's calls could come back out of order.
fn migrate(rounds: u32) -> ! {
    // SAFETY: sysconf has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
    let markers = [libc::SYS_getuid, libc::SYS_getgid, libc::SYS_getppid];
    for i in 0..rounds as usize {
        // SAFETY: a zeroed cpu_set_t with one bit set, passed with its size.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(i % cpus, &mut set);
            check(
                "sched_setaffinity",
                libc::syscall(libc::SYS_sched_setaffinity, 0, size_of_val(&set), &set as *const libc::cpu_set_t),
            );
            libc::syscall(markers[i % 3]);
        }
    }
    // SAFETY: ends the process.
    unsafe { libc::syscall(libc::SYS_exit_group, 0) };
    unreachable!("exit_group returned")
}

fn check(what: &str, rc: i64) -> i64 {
    if rc < 0 {
        eprintln!("{what}: {}", std::io::Error::last_os_error());
        exit(4);
    }
    rc
}

fn sockaddr_v4(port: u16) -> libc::sockaddr_in {
    // SAFETY: all-zero sockaddr_in is valid.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as u16;
    sa.sin_port = port.to_be();
    sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    sa
}

fn local_port(fd: i32) -> u16 {
    let mut sa = sockaddr_v4(0);
    let mut len = size_of::<libc::sockaddr_in>() as u32;
    // SAFETY: sa and len are valid for getsockname to fill.
    check("getsockname", unsafe { libc::getsockname(fd, (&mut sa as *mut libc::sockaddr_in).cast(), &mut len) }.into());
    u16::from_be(sa.sin_port)
}

/// Each security-relevant syscall vigil watches, made harmlessly: loopback sockets, a memfd, a
/// bpf() and module loads the kernel rejects, a ptrace of our own child, and a uid drop.
fn security() -> ! {
    let sl = size_of::<libc::sockaddr_in>() as u32;
    // SAFETY: plain syscalls on our own fds and stack buffers; the child only pauses.
    unsafe {
        let server = check("socket", libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0).into()) as i32;
        let any = sockaddr_v4(0);
        check("bind", libc::bind(server, (&any as *const libc::sockaddr_in).cast(), sl).into());
        check("listen", libc::listen(server, 8).into());
        let port = local_port(server);
        let client = check("socket", libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0).into()) as i32;
        let dst = sockaddr_v4(port);
        check("connect", libc::connect(client, (&dst as *const libc::sockaddr_in).cast(), sl).into());
        let client_port = local_port(client);
        let mut peer = sockaddr_v4(0);
        let mut peer_len = sl;
        let conn = check("accept4", libc::accept4(server, (&mut peer as *mut libc::sockaddr_in).cast(), &mut peer_len, 0).into());
        libc::close(conn as i32);
        libc::close(client);
        libc::close(server);

        check("memfd_create", libc::syscall(libc::SYS_memfd_create, c"vigil-memfd".as_ptr(), libc::MFD_CLOEXEC));

        // BPF_PROG_LOAD of a socket filter with no instructions: the kernel refuses it.
        let mut attr = [0u8; 128];
        attr[0..4].copy_from_slice(&1u32.to_ne_bytes());
        attr[48..55].copy_from_slice(b"vigil_t");
        libc::syscall(libc::SYS_bpf, 5, attr.as_ptr(), attr.len());
        // finit_module on a bad fd, init_module of 16 zero bytes: both refused, nothing loads.
        libc::syscall(libc::SYS_finit_module, -1, c"".as_ptr(), 0);
        let image = [0u8; 16];
        libc::syscall(libc::SYS_init_module, image.as_ptr(), image.len(), c"".as_ptr());

        let child = libc::fork();
        if child == 0 {
            loop {
                libc::pause();
            }
        }
        check("ptrace attach", libc::ptrace(libc::PTRACE_ATTACH, child, 0, 0));
        let mut status = 0;
        libc::waitpid(child, &mut status, 0);
        libc::ptrace(libc::PTRACE_DETACH, child, 0, 0);
        libc::kill(child, libc::SIGKILL);
        libc::waitpid(child, &mut status, 0);

        println!("{port} {client_port} {child}");
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        check("setresuid", libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534));
    }
    exit(0)
}

extern "C" fn on_signal(_: libc::c_int) {}

/// A process older than the daemon (the test starts it first): once told, it takes a signal
/// through a handler (the handler's return is rt_sigreturn), drops to nobody with setresuid and
/// exits with exit_group.
fn drop_later() -> ! {
    use std::io::{BufRead as _, Write as _};
    println!("ready");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    // SAFETY: a handler that does nothing; raw syscalls with integer arguments.
    unsafe {
        libc::signal(libc::SIGUSR1, on_signal as *const () as libc::sighandler_t);
        libc::syscall(libc::SYS_kill, libc::getpid(), libc::SIGUSR1);
        check("setresuid", libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534));
        libc::syscall(libc::SYS_exit_group, 0);
    }
    unreachable!("exit_group returned")
}
