# background.pl SERVERS RELEASE: a background job followed with
# get_status: its progress while the worker holds it, then unknown once
# the worker finished it (after RELEASE, a file, exists).
use strict;
use warnings;
use Gearman::Client;
use Time::HiRes qw(sleep time);

$| = 1;
my ($servers, $release) = @ARGV;
my $client = Gearman::Client->new(job_servers => [split /,/, $servers]);

my $handle = $client->dispatch_background(hold => $release);
defined $handle or die "dispatch_background failed\n";
print "handle: ", ($handle =~ s{//.*}{//HANDLE}r), "\n";

my $status;
my $until = time + 20;
while (time < $until) {
    $status = $client->get_status($handle);
    last if $status && $status->running && $status->progress && $status->progress->[0] == 1;
    sleep 0.01;
}
printf "while held: known=%s running=%s progress=%s percent=%s\n",
    $status->known, $status->running, join("/", @{ $status->progress || [] }),
    $status->percent // "undef";

open my $f, '>', $release or die "$release: $!\n";
close $f;

$until = time + 20;
while (time < $until) {
    $status = $client->get_status($handle);
    last if $status && !$status->known;
    sleep 0.01;
}
printf "after: known=%s running=%s\n", $status->known, $status->running;
