//! A VM's TOPOLOGY and NUMA_NODE as 7.0.2's `VirtualMachine::parse_topology` leaves them at
//! allocation: a non-pinned VM gets a whole socket/core/thread topology (one socket of VCPU
//! cores unless given), a pinned one its sockets and threads and a NUMA_NODE per node with
//! its share of the CPUs and the memory (in KiB); the refusals are oned's.

use template::{Template, Value};

type Pairs = Vec<(String, String)>;

/// The NUMA nodes a pinned VM may be split into (no host has more).
const MAX_NODES: u64 = 256;

fn put(v: &mut Pairs, name: &str, value: impl ToString) {
    template::vector_set(v, name, value.to_string());
}

fn node(cpus: u64, memory_kib: i64) -> Value {
    Value::Vector(vec![
        ("MEMORY".into(), memory_kib.to_string()),
        ("TOTAL_CPUS".into(), cpus.to_string()),
    ])
}

/// `HostShare::str_to_pin_policy`: anything but CORE, THREAD and SHARED is not pinned.
pub(super) fn pinned(policy: &str) -> bool {
    matches!(
        policy.trim().to_ascii_uppercase().as_str(),
        "CORE" | "THREAD" | "SHARED"
    )
}

/// `VirtualMachine::parse_topology` on a new VM's template `t`.
pub fn parse(t: &mut Template) -> Result<(), String> {
    let mut topology: Option<Pairs> = t.vector("TOPOLOGY").map(<[_]>::to_vec);
    t.remove("TOPOLOGY");
    let numa: Vec<Pairs> = t
        .get_all("NUMA_NODE")
        .filter_map(|a| a.value.as_vector().map(<[_]>::to_vec))
        .collect();
    if topology.is_none() && numa.is_empty() {
        return Ok(());
    }
    let topo = topology.get_or_insert_with(Vec::new);
    let result = shape(t, topo, &numa);
    t.push("TOPOLOGY", Value::Vector(topo.clone()));
    result
}

fn shape(t: &mut Template, topo: &mut Pairs, numa: &[Pairs]) -> Result<(), String> {
    let pinned = pinned(template::vector_get(topo, "PIN_POLICY").unwrap_or(""));
    let affinity: Option<i64> = template::vector_get_as(topo, "NODE_AFFINITY");
    if affinity.is_none() {
        topo.retain(|(k, _)| !k.eq_ignore_ascii_case("NODE_AFFINITY"));
    }
    if pinned && affinity.is_some() {
        return Err("NUMA node affinity cannot be set for pinned VMs".into());
    }
    let memory: i64 = t.single_as("MEMORY").ok_or("VM has not MEMORY set")?;
    let vcpu: u64 = match t.single_as("VCPU") {
        Some(v) => v,
        None => {
            t.set("VCPU", Value::Single("1".into()));
            1
        }
    };
    if pinned {
        t.set("CPU", Value::Single(vcpu.to_string()));
    }
    if t.single_as::<u64>("VCPU_MAX").is_some() {
        return Err("VM with TOPOLOGY does not support CPU hotplug (VCPU_MAX)".into());
    }
    let count = |topo: &Pairs, k: &str| template::vector_get_as::<u64>(topo, k).unwrap_or(0);
    let (mut s, c, mut th) = (
        count(topo, "SOCKETS"),
        count(topo, "CORES"),
        count(topo, "THREADS"),
    );
    if !pinned {
        if c == 0 && th == 0 && s == 0 {
            put(topo, "SOCKETS", 1);
            put(topo, "CORES", vcpu);
            put(topo, "THREADS", 1);
        } else if c == 0 || th == 0 || s == 0 {
            return Err(
                "Non-pinned VMs with a virtual topology needs to set  SOCKETS, CORES \
                        and THREADS numbers."
                    .into(),
            );
        } else if s.saturating_mul(c).saturating_mul(th) != vcpu {
            return Err("Total threads per core and socket needs to match VCPU".into());
        }
        put(topo, "PIN_POLICY", "NONE");
        t.remove("NUMA_NODE");
        if affinity.is_some() || count(topo, "HUGEPAGE_SIZE") != 0 {
            t.push("NUMA_NODE", node(vcpu, memory.saturating_mul(1024)));
        }
        return Ok(());
    }
    if s == 0 {
        s = if numa.is_empty() {
            1
        } else {
            numa.len() as u64
        };
        put(topo, "SOCKETS", s);
    }
    if c != 0 && th != 0 && s.saturating_mul(c).saturating_mul(th) != vcpu {
        return Err("Total threads per core and socket needs to match VCPU".into());
    }
    if th == 0 && c != 0 {
        if !vcpu.is_multiple_of(c.saturating_mul(s)) {
            return Err("VCPU is not multiple of the total number of cores".into());
        }
        th = vcpu / c.saturating_mul(s);
        if th & th.wrapping_sub(1) != 0 {
            return Err("Computed number of threads is not power of 2".into());
        }
        put(topo, "THREADS", th);
    }
    if numa.is_empty() {
        // One NUMA_NODE per socket: a client's SOCKETS may not make a template of millions.
        if s > MAX_NODES {
            return Err(format!("A VM topology has at most {MAX_NODES} sockets"));
        }
        if !vcpu.is_multiple_of(s) {
            return Err("VCPU is not multiple of the number of NUMA nodes".into());
        }
        if memory % s as i64 != 0 {
            return Err("MEMORY is not multiple of the number of NUMA nodes".into());
        }
        for _ in 0..s {
            t.push(
                "NUMA_NODE",
                node(vcpu / s, (memory / s as i64).saturating_mul(1024)),
            );
        }
        return Ok(());
    }
    let (mut cpus, mut mem) = (0u64, 0i64);
    let (mut ncpu, mut nmem) = (0u64, 0i64);
    let mut nodes = Vec::new();
    for n in numa {
        ncpu = template::vector_get_as(n, "TOTAL_CPUS").unwrap_or(0);
        nmem = template::vector_get_as(n, "MEMORY").unwrap_or(0);
        if ncpu == 0 || nmem <= 0 {
            break;
        }
        nodes.push(node(ncpu, nmem.saturating_mul(1024)));
        cpus = cpus.saturating_add(ncpu);
        mem = mem.saturating_add(nmem);
    }
    t.remove("NUMA_NODE");
    if ncpu == 0 {
        return Err("A NUMA_NODE must have TOTAL_CPUS greater than 0".into());
    }
    if nmem <= 0 {
        return Err(" A NUMA_NODE must have MEMORY greater than 0".into());
    }
    if cpus != vcpu {
        return Err("Total CPUS of NUMA nodes is different from VM VCPU".into());
    }
    if mem != memory {
        return Err("Total MEMORY of NUMA nodes is different from VM MEMORY".into());
    }
    for n in nodes {
        t.push("NUMA_NODE", n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<Template, String> {
        let mut t = Template::parse(text).unwrap();
        parse(&mut t).map(|_| t)
    }

    fn topo(t: &Template, k: &str) -> String {
        template::vector_get(t.vector("TOPOLOGY").unwrap(), k)
            .unwrap_or("")
            .to_string()
    }

    #[test]
    fn a_non_pinned_vm_gets_a_whole_topology_or_is_refused() {
        let t = run("MEMORY = 64\nVCPU = 4\nTOPOLOGY = [ NODE_AFFINITY = x ]").unwrap();
        assert_eq!(
            (topo(&t, "SOCKETS"), topo(&t, "CORES"), topo(&t, "THREADS")),
            ("1".into(), "4".into(), "1".into())
        );
        assert_eq!(topo(&t, "PIN_POLICY"), "NONE");
        assert_eq!(topo(&t, "NODE_AFFINITY"), "");
        assert!(t.get("NUMA_NODE").is_none());
        let t = run("MEMORY = 64\nTOPOLOGY = [ HUGEPAGE_SIZE = 2 ]").unwrap();
        assert_eq!(t.single("VCPU"), Some("1"));
        let n = t.vector("NUMA_NODE").unwrap();
        assert_eq!(template::vector_get(n, "MEMORY"), Some("65536"));
        assert_eq!(
            run("MEMORY = 64\nVCPU = 2\nTOPOLOGY = [ SOCKETS = 2 ]").unwrap_err(),
            "Non-pinned VMs with a virtual topology needs to set  SOCKETS, CORES and THREADS \
             numbers."
        );
        assert_eq!(
            run("MEMORY = 64\nVCPU = 2\nTOPOLOGY = [ SOCKETS = 2, CORES = 2, THREADS = 1 ]")
                .unwrap_err(),
            "Total threads per core and socket needs to match VCPU"
        );
        assert_eq!(
            run("MEMORY = 64\nVCPU = 2\nVCPU_MAX = 4\nTOPOLOGY = [ ]").unwrap_err(),
            "VM with TOPOLOGY does not support CPU hotplug (VCPU_MAX)"
        );
        assert_eq!(
            run("VCPU = 2\nTOPOLOGY = [ SOCKETS = 1 ]").unwrap_err(),
            "VM has not MEMORY set"
        );
        assert!(run("MEMORY = 64").unwrap().get("TOPOLOGY").is_none());
    }

    #[test]
    fn a_pinned_vm_gets_its_threads_and_numa_nodes() {
        let t =
            run("MEMORY = 128\nVCPU = 4\nCPU = 0.5\nTOPOLOGY = [ PIN_POLICY = core, CORES = 2 ]")
                .unwrap();
        assert_eq!(t.single("CPU"), Some("4"));
        assert_eq!(
            (topo(&t, "SOCKETS"), topo(&t, "THREADS")),
            ("1".into(), "2".into())
        );
        let nodes: Vec<_> = t.get_all("NUMA_NODE").collect();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].vector_get("MEMORY"), Some("131072"));
        let t = run(
            "MEMORY = 128\nVCPU = 4\nTOPOLOGY = [ PIN_POLICY = THREAD ]\n\
             NUMA_NODE = [ TOTAL_CPUS = 1, MEMORY = 32 ]\nNUMA_NODE = [ TOTAL_CPUS = 3, MEMORY = 96 ]",
        )
        .unwrap();
        assert_eq!(topo(&t, "SOCKETS"), "2");
        assert_eq!(t.get_all("NUMA_NODE").count(), 2);
        for (text, why) in [
            (
                "MEMORY = 128\nVCPU = 4\nTOPOLOGY = [ PIN_POLICY = CORE, NODE_AFFINITY = 0 ]",
                "NUMA node affinity cannot be set for pinned VMs",
            ),
            (
                "MEMORY = 1000000\nVCPU = 1000000\nTOPOLOGY = [ PIN_POLICY = CORE, SOCKETS = 1000000 ]",
                "A VM topology has at most 256 sockets",
            ),
            (
                "MEMORY = 128\nVCPU = 6\nTOPOLOGY = [ PIN_POLICY = CORE, CORES = 2 ]",
                "Computed number of threads is not power of 2",
            ),
            (
                "MEMORY = 128\nVCPU = 5\nTOPOLOGY = [ PIN_POLICY = CORE, CORES = 2 ]",
                "VCPU is not multiple of the total number of cores",
            ),
            (
                "MEMORY = 127\nVCPU = 4\nTOPOLOGY = [ PIN_POLICY = CORE, SOCKETS = 2 ]",
                "MEMORY is not multiple of the number of NUMA nodes",
            ),
            (
                "MEMORY = 128\nVCPU = 4\nTOPOLOGY = [ PIN_POLICY = CORE ]\n\
                 NUMA_NODE = [ TOTAL_CPUS = 2, MEMORY = 64 ]",
                "Total CPUS of NUMA nodes is different from VM VCPU",
            ),
            (
                "MEMORY = 128\nVCPU = 4\nTOPOLOGY = [ PIN_POLICY = CORE ]\n\
                 NUMA_NODE = [ TOTAL_CPUS = 4, MEMORY = 0 ]",
                " A NUMA_NODE must have MEMORY greater than 0",
            ),
        ] {
            assert_eq!(run(text).unwrap_err(), why, "{text}");
        }
    }
}
