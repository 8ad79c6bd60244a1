//! A Kubernetes-API-compatible in-memory server, for tests and the demo only.
//!
//! No real kube-apiserver can be installed on our machines, yet resource copy, the CRD
//! controller, the chaos tests and `avocet demo` need clusters. This crate will serve the real
//! REST protocol (discovery, CRUD, watch, resourceVersion conflicts, label selectors, paging,
//! status and scale subresources, patches) well enough that the kube crate and real `kubectl`
//! cannot tell the difference for what Avocet does. It is never a production component: the
//! product talks to it only through the kube crate, exactly as to a real cluster. The sandbox
//! issue fills it in.
