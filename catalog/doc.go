// Package catalog owns the scripts folder: it validates script names, writes
// scripts atomically, versions them by content hash, keeps an index fresh by
// rescanning the folder, and answers the catalog subjects on the bus.
package catalog
