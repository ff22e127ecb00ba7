// Package ipvs holds end-to-end tests of the IPVS data plane: real traffic
// from a client namespace through a VIP on a director namespace (kernel
// IPVS programmed by hakeep's lvs package) to real-server namespaces. They
// run in the vmtest VM (make test-ipvs); elsewhere they skip.
package ipvs
