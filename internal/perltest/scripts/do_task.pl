# do_task.pl SERVERS: foreground jobs with Gearman::Client's do_task, one
# line per job.
use strict;
use warnings;
use GearflowTest;
use Digest::MD5 qw(md5_hex);
use Gearman::Client;

$| = 1;

my $client = Gearman::Client->new(job_servers => [job_servers($ARGV[0])]);

show(plain => $client->do_task(upper => "hello"));
show(uniq  => $client->do_task(upper => "with uniq", { uniq => "u-1" }));
show(dash  => $client->do_task(upper => "by payload", { uniq => "-" }));
show(high  => $client->do_task(upper => "high", { priority => "high" }));
show(low   => $client->do_task(upper => "low", { priority => "low" }));

my @status;
show(status => $client->do_task(
    status => "", { on_status => sub { push @status, "$_[0]/$_[1]" } }));
print "on_status: @status\n";

my @parts;
show(partial => $client->do_task(partial => "", {
    on_data    => sub { push @parts, "data ${ $_[0] }" },
    on_warning => sub { push @parts, "warning ${ $_[0] }" },
}));
print "on_data, on_warning: ", join(", ", @parts), "\n";

# A 1 MiB result, and a 1 MiB argument with every byte value.
my $big = $client->do_task(big => 1 << 20);
my $block = join '', map { chr } 0 .. 255;
my $want = $block x 4096;
print "big: ", length($$big), " bytes, ", ($$big eq $want ? "as sent" : "differs"), "\n";
show(sum => $client->do_task(sum => $want));
print "sum wanted: ", length($want), " ", md5_hex($want), "\n";
