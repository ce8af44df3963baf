//! Scenario programs the integration tests run under vigil. Each makes raw syscalls (no libc
//! wrappers that might add or elide calls) so the test knows exactly what the kernel saw.
//!
//!   vigil-scenario known V4_PORT V6_PORT REFUSED_PORT EXIT_CODE
//!   vigil-scenario flood SECONDS      (prints the number of getppid calls made)

use std::{
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6},
    process::exit,
    time::{Duration, Instant},
};

/// The marker sequence `known` makes, in order; the test looks for it verbatim.
pub const MARKER: [i64; 7] = [
    libc::SYS_getppid,
    libc::SYS_getpgrp,
    libc::SYS_umask,
    libc::SYS_getuid,
    libc::SYS_getgid,
    libc::SYS_sched_yield,
    libc::SYS_getppid,
];

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
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: vigil-scenario known V4 V6 REFUSED CODE | flood SECONDS");
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
