# tls.pl SERVERS: foreground jobs over TLS: results in one packet, 1 MiB
# each way, then a job whose worker sends WORK_STATUS twice before its
# WORK_COMPLETE (given 5 s).
use strict;
use warnings;
use GearflowTest;
use Digest::MD5 qw(md5_hex);
use Gearman::Client;

$| = 1;

my $client = Gearman::Client->new(job_servers => [job_servers($ARGV[0])]);

show(plain => $client->do_task(upper => "over tls", { timeout => 10 }));
my $big = $client->do_task(big => 1 << 20, { timeout => 10 });
my $want = join('', map { chr } 0 .. 255) x 4096;
print "big: ", ($big ? length($$big) : "undef"), " bytes, ", ($big && $$big eq $want ? "as sent" : "differs"), "\n";
show(sum => $client->do_task(sum => $want, { timeout => 10 }));
print "sum wanted: ", length($want), " ", md5_hex($want), "\n";

my @status;
show(status => $client->do_task(status => "",
    { timeout => 5, on_status => sub { push @status, "$_[0]/$_[1]" } }));
print "on_status: @status\n";
