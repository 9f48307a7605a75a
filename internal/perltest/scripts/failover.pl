# failover.pl SERVERS: jobs through a client whose first job server is
# down. Tasks without a uniq go to a random server and move on to the
# next when the connection is refused. A task with a uniq goes to the
# server its hash picks, without failover (Gearman::Taskset's
# _get_hashed_sock tries only that one): those fail when it is the
# down one.
use strict;
use warnings;
use Gearman::Client;
use Gearman::Task;
use Time::HiRes qw(sleep time);

$| = 1;
my @servers = split /,/, $ARGV[0];
my $client = Gearman::Client->new(job_servers => [@servers]);

my $ok = 0;
for my $i (1 .. 20) {
    my $r = $client->do_task(upper => "job $i");
    $ok++ if $r && $$r eq "JOB $i";
}
print "no uniq: $ok of 20 right\n";

my ($live_ok, $live, $down_failed, $down) = (0, 0, 0, 0);
for my $i (1 .. 20) {
    my $uniq = "key-$i";
    my $on_down = Gearman::Task->new(upper => \"", { uniq => $uniq })->hash % @servers == 0;
    my $failed = "";
    my $r = $client->do_task(upper => "uniq $i",
        { uniq => $uniq, on_fail => sub { $failed = $_[0] } });
    if ($on_down) {
        $down++;
        $down_failed++ if !defined $r && $failed eq "undefined jssock";
    } else {
        $live++;
        $live_ok++ if $r && $$r eq "UNIQ $i";
    }
}
print "uniq on the live server: $live_ok of $live right\n";
print "uniq on the down server: $down_failed of $down failed\n";

my $handle = $client->dispatch_background(upper => "background");
my ($on) = split m{//}, $handle // "";
print "background: ", ($on eq $servers[1] ? "queued on the live server" : "queued on '$on'"), "\n";
my $until = time + 20;
my $status;
while (time < $until) {
    $status = $client->get_status($handle);
    last if $status && !$status->known;
    sleep 0.01;
}
print "background: ", ($status && !$status->known ? "done" : "not done"), "\n";
