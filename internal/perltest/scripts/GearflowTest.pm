# GearflowTest: what the interop scripts share. perltest writes it
# beside each script and runs perl with that folder in @INC.
package GearflowTest;
use strict;
use warnings;
use Exporter 'import';
our @EXPORT = qw(job_servers show);

# job_servers(SERVERS): the comma-separated job servers as
# Gearman::Client and Gearman::Worker take them. A job server is
# HOST:PORT, or tls|HOST:PORT|CAFILE[|CERTFILE|KEYFILE] for TLS checked
# against the CA in CAFILE, with a client certificate when CERTFILE and
# KEYFILE are given.
sub job_servers {
    map {
        my ($tls, $hostport, $ca, $cert, $key) = split /\|/;
        my ($host, $port) = ($hostport // "") =~ /^(.+):(\d+)$/;
        $tls ne "tls" ? $_ : {
            host => $host, port => $port, use_ssl => 1, ca_file => $ca,
            (defined $cert ? (cert_file => $cert, key_file => $key) : ()),
        };
    } split /,/, shift;
}

# show(NAME, RESULT): prints "NAME: RESULT" for do_task's result (a
# reference to the result, or undef).
sub show {
    my ($name, $result) = @_;
    print "$name: ", (defined $result ? $$result : "undef"), "\n";
}

1;
